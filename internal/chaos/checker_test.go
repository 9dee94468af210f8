//go:build linux

package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ms = time.Millisecond

var testParams = checkParams{stale: time.Second, staleFor: 5 * time.Second, reconnect: time.Second, margin: time.Second}

func setOp(host string, ver int, start time.Duration, res result) op {
	return op{host: host, kind: opSet, key: "k", ver: ver, ttl: time.Minute, start: start, end: start + 10*ms, res: res}
}

// shortSet is setOp with a lifetime of ttl.
func shortSet(host string, ver int, start, ttl time.Duration) op {
	o := setOp(host, ver, start, resOK)
	o.ttl = ttl
	return o
}

func delOp(host string, start time.Duration, res result) op {
	return op{host: host, kind: opDel, key: "k", start: start, end: start + 10*ms, res: res}
}

func getOp(host string, ver int, start time.Duration) op {
	o := op{host: host, kind: opGet, key: "k", ver: ver, start: start, end: start + 5*ms, res: resValue}
	if ver == 0 {
		o.res = resNotFound
	}
	return o
}

func TestValueCodec(t *testing.T) {
	key, ver, ok := decodeValue(encodeValue("c1-7", 3, "xyz"))
	require.True(t, ok)
	assert.Equal(t, "c1-7", key)
	assert.Equal(t, 3, ver)
	_, _, ok = decodeValue(encodeValue("c1-7", 3, ""))
	assert.True(t, ok, "no padding")
	for _, bad := range []string{"", "c1-7", "c1-7.x.y", "c1-7.0.", "c1-7.-2."} {
		_, _, ok := decodeValue(bad)
		assert.False(t, ok, bad)
	}
}

func TestCheckRun(t *testing.T) {
	quiet := &faultLog{}
	tests := []struct {
		name                                string
		ops                                 []op
		faults                              *faultLog
		resurrected, corrupt, stale, missed int
		staleExpired                        int
	}{
		{name: "clean", ops: []op{setOp("host0", 1, 0, resOK), getOp("host1", 1, 100*ms), delOp("host2", 200*ms, resOK), getOp("host1", 0, 2*time.Second)}},
		{name: "read within the allowance", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 100*ms, resOK), getOp("host1", 1, 900*ms)}},
		{name: "read after the allowance", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 100*ms, resOK), getOp("host1", 1, 1200*ms)}, resurrected: 1},
		{name: "failed delete", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 100*ms, resErr), getOp("host1", 1, 3*time.Second)}},
		{name: "set again after the delete", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 100*ms, resOK), setOp("host1", 2, 200*ms, resOK), getOp("host2", 2, 3*time.Second)}},
		{name: "old version after the delete and a new set", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 100*ms, resOK), setOp("host1", 2, 200*ms, resOK), getOp("host2", 1, 3*time.Second)}, resurrected: 1},
		{name: "a failed set after the delete may stand", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 100*ms, resOK), setOp("host1", 2, 200*ms, resErr), getOp("host2", 2, 3*time.Second)}},
		{name: "never written", ops: []op{setOp("host0", 1, 0, resOK), getOp("host1", 5, time.Second)}, corrupt: 1},
		{name: "not ours", ops: []op{setOp("host0", 1, 0, resOK), getOp("host1", -1, time.Second)}, corrupt: 1},
		{name: "stale", ops: []op{setOp("host0", 1, 0, resOK), setOp("host0", 2, 100*ms, resOK), getOp("host1", 1, 2*time.Second)}, stale: 1},
		{name: "stale after the newer version expired", ops: []op{setOp("host0", 1, 0, resOK), shortSet("host0", 2, 100*ms, time.Second), getOp("host1", 1, 3*time.Second)}, staleExpired: 1},
		{name: "stale before the newer version expired", ops: []op{setOp("host0", 1, 0, resOK), shortSet("host0", 2, 100*ms, 5*time.Second), getOp("host1", 1, 3*time.Second)}, stale: 1},
		{name: "missed", ops: []op{setOp("host0", 1, 0, resOK), getOp("host1", 0, time.Second)}, missed: 1},
		{name: "not missed after a failed delete", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 100*ms, resErr), getOp("host1", 0, time.Second)}},
		{name: "cut off host gets staleFor", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 2*time.Second, resOK), getOp("host1", 1, 6*time.Second)},
			faults: func() *faultLog {
				f := &faultLog{}
				f.end(f.begin(1500*ms, "host1", "cut", "cut"), 4*time.Second, "healed")
				return f
			}()},
		{name: "cut off host past staleFor", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 2*time.Second, resOK), getOp("host1", 1, 7100*ms)},
			faults: func() *faultLog {
				f := &faultLog{}
				f.end(f.begin(1500*ms, "host1", "cut", "cut"), 4*time.Second, "healed")
				return f
			}(), resurrected: 1},
		{name: "relay down counts for every host, with the reconnect slack", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 2*time.Second, resOK), getOp("host1", 1, 6*time.Second)},
			faults: func() *faultLog {
				f := &faultLog{}
				f.end(f.begin(500*ms, "relay", "down", "kill"), 1500*ms, "up")
				return f
			}()},
		{name: "another host's cut does not count", ops: []op{setOp("host0", 1, 0, resOK), delOp("host0", 2*time.Second, resOK), getOp("host1", 1, 4*time.Second)},
			faults: func() *faultLog {
				f := &faultLog{}
				f.begin(1500*ms, "host2", "cut", "cut")
				return f
			}(), resurrected: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.faults
			if f == nil {
				f = quiet
			}
			r := checkRun(map[string][]op{"k": tt.ops}, f, testParams)
			assert.Len(t, r.resurrected, tt.resurrected, "resurrected %v", r.resurrected)
			assert.Len(t, r.corrupt, tt.corrupt, "corrupt %v", r.corrupt)
			assert.Equal(t, tt.stale, len(r.stale), "stale")
			assert.Equal(t, tt.staleExpired, len(r.staleExpired), "stale after the newer version expired")
			assert.Equal(t, tt.missed, len(r.missed), "missed")
		})
	}
}

func TestFinalExpectation(t *testing.T) {
	e, ok := finalExpectation([]op{setOp("host0", 1, 0, resOK), setOp("host1", 2, time.Second, resErr)})
	require.True(t, ok)
	assert.False(t, e.deleted)
	assert.Equal(t, []int{1, 2}, e.versions, "the acknowledged set, or the failed one after it")
	assert.Equal(t, time.Minute, e.until)

	_, ok = finalExpectation([]op{setOp("host0", 1, 0, resOK), delOp("host1", time.Second, resErr)})
	assert.False(t, ok, "a failed delete leaves it open")

	e, ok = finalExpectation([]op{setOp("host0", 1, 0, resOK), delOp("host1", time.Second, resErr), delOp("host1", 2*time.Second, resOK)})
	require.True(t, ok)
	assert.True(t, e.deleted)

	e, ok = finalExpectation([]op{setOp("host0", 1, 0, resOK), delOp("host1", time.Second, resOK), setOp("host0", 2, 2*time.Second, resOK)})
	require.True(t, ok)
	assert.Equal(t, []int{2}, e.versions, "set again after the delete")
	assert.Empty(t, e.note)

	e, ok = finalExpectation([]op{setOp("host0", 1, 0, resOK), delOp("host1", time.Second, resErr), setOp("host0", 2, 2*time.Second, resOK)})
	require.True(t, ok)
	assert.NotEmpty(t, e.note, "a failed delete before the acknowledged set is noted")

	_, ok = finalExpectation([]op{setOp("host0", 1, 0, resErr)})
	assert.False(t, ok, "no acknowledged set")

	e, ok = finalExpectation([]op{setOp("host0", 1, 0, resErr), delOp("host1", time.Second, resOK)})
	require.True(t, ok)
	assert.True(t, e.deleted, "an acknowledged delete after a failed set")
}

func TestJudge(t *testing.T) {
	live := expectation{key: "k", versions: []int{2, 3}, until: time.Minute}
	fresh := func(ver int, at time.Duration) op {
		g := getOp("fresh", ver, at)
		return g
	}
	v, _ := judge(live, fresh(2, 30*time.Second), time.Second)
	assert.Empty(t, v)
	v, _ = judge(live, fresh(3, 30*time.Second), time.Second)
	assert.Empty(t, v)
	v, why := judge(live, fresh(1, 30*time.Second), time.Second)
	assert.Equal(t, "lost", v, why)
	v, why = judge(live, fresh(0, 30*time.Second), time.Second)
	assert.Equal(t, "lost", v, why)
	v, _ = judge(live, fresh(0, 59500*ms), time.Second)
	assert.Equal(t, "skip", v, "about to expire")
	v, _ = judge(live, op{kind: opGet, res: resErr}, time.Second)
	assert.Equal(t, "skip", v)

	deleted := expectation{key: "k", deleted: true}
	v, _ = judge(deleted, fresh(0, time.Second), time.Second)
	assert.Empty(t, v)
	v, why = judge(deleted, fresh(1, time.Second), time.Second)
	assert.Equal(t, "resurrected", v, why)
}
