package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := demo(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		`browser 1: {"gateway":{"event":"joined","group":"budget","instance":"gw-1"`,
		`browser 2: {"gateway":{"event":"joined","group":"budget","instance":"gw-2"`,
		`browser 1 got {"type":"ack","id":1,"worker":"w`,
		`browser 2 got {"type":"cell","cell":"A1","value":"42","by":"anonymous-`,
		`browser 2 got {"gateway":{"event":"error","seq":1,"error":"unknown op \"paint\""}}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the demo did not print %s\n%s", want, s)
		}
	}
}
