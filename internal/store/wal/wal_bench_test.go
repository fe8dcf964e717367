package wal

import (
	"fmt"
	"testing"
)

// BenchmarkWriteSync measures the collector's hot path: one 64 KiB batch
// written and fsynced per operation.
func BenchmarkWriteSync(b *testing.B) {
	const batchBytes = 64 << 10
	for _, recSize := range []int{256, 4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("record=%d", recSize), func(b *testing.B) {
			batch := make([][]byte, batchBytes/recSize)
			for i := range batch {
				batch[i] = make([]byte, recSize)
				for j := range batch[i] {
					batch[i][j] = byte(i + j)
				}
			}
			l, err := Open(b.TempDir(), Options{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.ReportAllocs()
			b.SetBytes(batchBytes)
			for b.Loop() {
				if err := l.Write(batch...); err != nil {
					b.Fatal(err)
				}
				if err := l.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWrite is the same without the fsync, to separate framing and
// write(2) cost from the disk.
func BenchmarkWrite(b *testing.B) {
	const batchBytes = 64 << 10
	batch := make([][]byte, batchBytes/256)
	for i := range batch {
		batch[i] = make([]byte, 256)
	}
	l, err := Open(b.TempDir(), Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	b.SetBytes(batchBytes)
	for b.Loop() {
		if err := l.Write(batch...); err != nil {
			b.Fatal(err)
		}
	}
}
