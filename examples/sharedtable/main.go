// Command sharedtable shows several processes on one host sharing one session table: this
// process creates the section, starts two copies of itself that attach to it, and each
// process writes sessions that the others read. It prints what each process sees.
//
//	go run ./examples/sharedtable
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

func main() {
	attach := flag.String("attach", "", "internal: attach to this section as worker NAME=PATH")
	flag.Parse()
	if *attach != "" {
		name, path, _ := strings.Cut(*attach, "=")
		worker(name, path)
		return
	}

	dir := sessioncache.DefaultDir
	if _, err := os.Stat(dir); err != nil {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("sharedtable-example-%d.table", os.Getpid()))
	table, err := sessioncache.Open(sessioncache.Config{
		Path: path, Create: true, ElementCount: 20000, RecordSize: 384, Seed: 9849381,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer table.Remove()
	defer table.Close()
	fmt.Printf("creator (pid %d): created %s, %d records of %d bytes, %d bytes in all\n",
		os.Getpid(), path, table.Capacity(), table.RecordSize(), table.SectionSize())

	if err := table.Set([]byte("session:alice"), []byte(`{"user":"alice","role":"admin"}`), time.Now().Add(time.Hour)); err != nil {
		log.Fatal(err)
	}
	fmt.Println("creator: set session:alice")

	// Start two workers; each attaches, reads alice, writes its own session, and waits for
	// the other's.
	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	var workers []*exec.Cmd
	var outputs []*bufio.Scanner
	for _, name := range []string{"bob", "carol"} {
		cmd := exec.Command(exe, "-attach", name+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			log.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		workers = append(workers, cmd)
		outputs = append(outputs, bufio.NewScanner(out))
	}
	for i, sc := range outputs {
		for sc.Scan() {
			fmt.Println(sc.Text())
		}
		if err := workers[i].Wait(); err != nil {
			log.Fatal(err)
		}
	}

	// Logout: one Delete and the session is gone for every process on the host.
	if _, err := table.Delete([]byte("session:bob")); err != nil {
		log.Fatal(err)
	}
	_, err = table.Get([]byte("session:bob"))
	fmt.Printf("creator: deleted session:bob; get now says %v\n", err)
	st := table.Stats()
	fmt.Printf("creator: table holds %d entries; %d hits, %d misses, %d sets across all processes\n",
		st.Len, st.Hits, st.Misses, st.Sets)
	if err := table.Verify(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("creator: Verify found the layout intact")
}

func worker(name, path string) {
	table, err := sessioncache.Open(sessioncache.Config{Path: path, Seed: 9849381})
	if err != nil {
		log.Fatal(err)
	}
	defer table.Close()
	who := fmt.Sprintf("%s (pid %d)", name, os.Getpid())
	v, err := table.Get([]byte("session:alice"))
	fmt.Printf("%s: attached; session:alice = %s (err %v)\n", who, v, err)
	key := []byte("session:" + name)
	if err := table.Set(key, fmt.Appendf(nil, `{"user":%q}`, name), time.Now().Add(time.Hour)); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: set %s\n", who, key)
	other := "carol"
	if name == "carol" {
		other = "bob"
	}
	// Wait (bounded) for the other worker's session to appear in the shared table.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if v, err := table.Get([]byte("session:" + other)); err == nil {
			fmt.Printf("%s: sees session:%s = %s, written by another process\n", who, other, v)
			return
		}
		time.Sleep(time.Millisecond)
	}
	log.Fatalf("%s: session:%s never appeared", who, other)
}
