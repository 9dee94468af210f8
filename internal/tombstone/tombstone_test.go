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

func TestAnOlderDeletionDoesNotOverrideANewerAnswer(t *testing.T) {
	s := New(time.Minute)
	k := []byte("k")
	seq := s.Seq()
	s.AddRev(k, 5) // a deletion replayed from a change stream while an answer was on its way
	assert.False(t, s.DeletedAfterRev(k, seq, 6), "the answer, of revision 6, is newer than the deletion")
	assert.True(t, s.DeletedAfterRev(k, seq, 5), "an answer of the deletion's revision or older is overridden")
	assert.True(t, s.DeletedAfterRev(k, seq, 4))
	assert.True(t, s.DeletedAfterRev(k, seq, 0), "an answer of unknown revision is overridden")
	seq = s.Seq()
	u := []byte("u")
	s.Add(u) // a deletion of unknown revision overrides anything
	assert.True(t, s.DeletedAfterRev(u, seq, 1<<62))
	assert.False(t, s.DeletedAfterRev([]byte("other"), seq, 1))
}
