package tombstone

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDeletedAfter(t *testing.T) {
	s := New(time.Minute)
	before := s.Seq()
	assert.False(t, s.DeletedAfter([]byte("k"), before))
	s.Add([]byte("k"))
	assert.True(t, s.DeletedAfter([]byte("k"), before), "deleted after the sequence was read")
	assert.False(t, s.DeletedAfter([]byte("other"), before))
	after := s.Seq()
	assert.False(t, s.DeletedAfter([]byte("k"), after), "deleted before the sequence was read")
	s.Clear([]byte("k"))
	assert.False(t, s.DeletedAfter([]byte("k"), before), "set again: no longer deleted")
}

func TestExpires(t *testing.T) {
	s := New(time.Nanosecond)
	seq := s.Seq()
	s.Add([]byte("old"))
	time.Sleep(time.Millisecond) // the TTL is wall-clock time by definition
	s.Add([]byte("new"))         // sweeps what is older than the TTL
	assert.False(t, s.DeletedAfter([]byte("old"), seq))
	assert.True(t, s.DeletedAfter([]byte("new"), seq))
}

func TestCoversOlderRevisions(t *testing.T) {
	s := New(time.Minute)
	assert.False(t, s.Covers([]byte("k"), 5))
	s.AddRev([]byte("k"), 7)
	assert.True(t, s.Covers([]byte("k"), 5), "a version older than the deletion")
	assert.True(t, s.Covers([]byte("k"), 7))
	assert.False(t, s.Covers([]byte("k"), 8), "a version newer than the deletion")
	s.AddRev([]byte("k"), 3) // an older deletion arriving late keeps the newer revision
	assert.True(t, s.Covers([]byte("k"), 6))
}
