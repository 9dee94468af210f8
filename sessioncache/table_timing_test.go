package sessioncache

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks use the workload of the README's comparison: 32-byte keys, 384-byte values,
// 100,000 keys, in a table on /dev/shm when it exists.

const (
	benchKeys      = 100_000
	benchKeySize   = 32
	benchValueSize = 384
)

func benchKey(i int) []byte { return fmt.Appendf(nil, "session-%024d", i) }

func benchTable(b *testing.B, valueSize int) *Table {
	b.Helper()
	dir := b.TempDir()
	if fi, err := osStat(DefaultDir); err == nil && fi.IsDir() {
		dir = DefaultDir
	}
	path := filepath.Join(dir, fmt.Sprintf("bench-%d-%d.table", osGetpid(), time.Now().UnixNano()))
	t := openTest(b, Config{Path: path, ElementCount: benchKeys * 5 / 4, RecordSize: benchKeySize + valueSize})
	b.Cleanup(func() { t.Remove() })
	return t
}

func fillBench(b *testing.B, t *Table, valueSize int) [][]byte {
	b.Helper()
	keys := make([][]byte, benchKeys)
	v := make([]byte, valueSize)
	for i := range keys {
		keys[i] = benchKey(i)
		if err := t.Set(keys[i], v, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	return keys
}

func BenchmarkGetAppendHit(b *testing.B) {
	for _, size := range []int{64, benchValueSize, 1024} {
		b.Run(fmt.Sprintf("value=%d", size), func(b *testing.B) {
			t := benchTable(b, size)
			keys := fillBench(b, t, size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			buf := make([]byte, 0, size)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, _, err := t.GetAppend(buf[:0], keys[i%benchKeys]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGetAppendHitParallel(b *testing.B) {
	t := benchTable(b, benchValueSize)
	keys := fillBench(b, t, benchValueSize)
	b.ReportAllocs()
	b.SetBytes(benchValueSize)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, benchValueSize)
		for i := 0; pb.Next(); i += 7 {
			if _, _, err := t.GetAppend(buf[:0], keys[i%benchKeys]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGetHotSet(b *testing.B) {
	t := benchTable(b, benchValueSize)
	keys := fillBench(b, t, benchValueSize)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, benchValueSize)
		for i := 0; pb.Next(); i++ {
			if _, _, err := t.GetAppend(buf[:0], keys[i%1000]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGetMiss(b *testing.B) {
	t := benchTable(b, benchValueSize)
	fillBench(b, t, benchValueSize)
	miss := benchKey(benchKeys + 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := t.GetAppend(nil, miss); err == nil {
			b.Fatal("hit")
		}
	}
}

func BenchmarkSet(b *testing.B) {
	t := benchTable(b, benchValueSize)
	keys := fillBench(b, t, benchValueSize)
	v := make([]byte, benchValueSize)
	b.ReportAllocs()
	b.SetBytes(benchValueSize)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := t.Set(keys[i%benchKeys], v, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetParallel(b *testing.B) {
	t := benchTable(b, benchValueSize)
	keys := fillBench(b, t, benchValueSize)
	b.ReportAllocs()
	b.SetBytes(benchValueSize)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		v := make([]byte, benchValueSize)
		for i := 0; pb.Next(); i += 7 {
			if err := t.Set(keys[i%benchKeys], v, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSetEvicting writes twice as many distinct keys as the table holds.
func BenchmarkSetEvicting(b *testing.B) {
	t := benchTable(b, benchValueSize)
	v := make([]byte, benchValueSize)
	keys := make([][]byte, 2*benchKeys)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := t.Set(keys[i%len(keys)], v, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetUniform replaces entries in uniformly random order, the tablecompare
// workload: with a table larger than the processor's caches most records are out of them.
func BenchmarkSetUniform(b *testing.B) {
	t := benchTable(b, benchValueSize)
	keys := fillBench(b, t, benchValueSize)
	order := rand.New(rand.NewPCG(1, 1)).Perm(benchKeys)
	v := make([]byte, benchValueSize)
	b.ReportAllocs()
	b.SetBytes(benchValueSize)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := t.Set(keys[order[i%benchKeys]], v, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetUniformParallel is BenchmarkSetUniform with GOMAXPROCS goroutines, each
// replacing entries in its own random order.
func BenchmarkSetUniformParallel(b *testing.B) {
	t := benchTable(b, benchValueSize)
	keys := fillBench(b, t, benchValueSize)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.SetBytes(benchValueSize)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		order := rand.New(rand.NewPCG(seed.Add(1), 1)).Perm(benchKeys)
		v := make([]byte, benchValueSize)
		for i := 0; pb.Next(); i++ {
			if err := t.Set(keys[order[i%benchKeys]], v, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
