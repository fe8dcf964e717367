package chtest

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestServerRoundTrip(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Exec(ctx, "CREATE TABLE t (id UInt32, s String) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	weird := "tab\there\nnewline \\ back"
	if err := s.Insert(ctx, "t", []byte("1\tplain\n2\t"+EscapeTSV(weird)+"\n")); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Query(ctx, "SELECT id, s FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"1", "plain"}, {"2", weird}}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows %q, want %q", rows, want)
	}
	if rows, err := s.Query(ctx, "SELECT 1 WHERE 0"); err != nil || rows != nil {
		t.Fatalf("empty result: %q, %v", rows, err)
	}
	if err := s.Exec(ctx, "SELECT no_such_column FROM t"); err == nil {
		t.Fatal("a bad query succeeded")
	}
}
