package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store/profiles"
)

// The profile state is kept in memory and written whole at each flush
// that follows a change, with the log segment it covers: replay applies
// the profile updates of that segment and later ones.
const profilesName = "profiles.snap"

var profilesMagic = [8]byte{'V', 'E', 'I', 'L', 'P', 'S', 'N', 1}

// loadProfiles reads the snapshot, if any, and the log segment it covers.
func loadProfiles(dataDir string) (*profiles.State, uint64, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, profilesName))
	if errors.Is(err, os.ErrNotExist) {
		return &profiles.State{}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if len(b) < 16 || [8]byte(b[:8]) != profilesMagic {
		return nil, 0, fmt.Errorf("store: %s is not a profile snapshot", profilesName)
	}
	st, err := profiles.Read(bytes.NewReader(b[16:]))
	if err != nil {
		return nil, 0, fmt.Errorf("store: %s: %w", profilesName, err)
	}
	return st, binary.LittleEndian.Uint64(b[8:16]), nil
}

// encodeProfiles serialises the state as the snapshot of log segment seq.
func encodeProfiles(st *profiles.State, seq uint64) []byte {
	var buf bytes.Buffer
	buf.Write(profilesMagic[:])
	binary.Write(&buf, binary.LittleEndian, seq)
	st.WriteTo(&buf) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// Profiles calls fn with the current profile state, which it must only
// read, and must not keep.
func (s *Store) Profiles(fn func(*profiles.State)) {
	s.profMu.RLock()
	defer s.profMu.RUnlock()
	fn(s.prof)
}

// applyProfiles applies a committed batch's profile updates.
func (s *Store) applyProfiles(us []event.ProfileUpdate) {
	if len(us) == 0 {
		return
	}
	s.profMu.Lock()
	for i := range us {
		s.prof.Apply(&us[i])
	}
	s.profDirty = true
	s.profMu.Unlock()
}
