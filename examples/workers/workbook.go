package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/globalsession/globalsession/gateway/broker"
)

// Workbook is the worker's logic: clients of a workbook (a group) edit cells, and every
// edit reaches everyone who has the workbook open. Messages are JSON:
//
//	{"op":"set","cell":"A1","value":"5","id":1}  ack to the sender, the cell to the group
//	{"op":"work","ms":300,"id":2}                 some slow work, then an ack
//	{"op":"echo","id":3}                          an ack from this worker
type Workbook struct {
	// Name is the worker's name, put in every reply so clients can see who served them.
	Name string
	// Log receives a line as slow work starts ("working <client> <id>").
	Log io.Writer

	mu sync.Mutex // serializes Log writes
}

type request struct {
	Op    string `json:"op"`
	ID    int64  `json:"id"`
	Cell  string `json:"cell,omitempty"`
	Value string `json:"value,omitempty"`
	MS    int    `json:"ms,omitempty"`
}

// Ack is what the sender of a message gets back.
type Ack struct {
	Type   string `json:"type"` // "ack"
	ID     int64  `json:"id"`
	Worker string `json:"worker"`
}

// Cell is what every client of the workbook gets for an edit.
type Cell struct {
	Type   string `json:"type"` // "cell"
	Cell   string `json:"cell"`
	Value  string `json:"value"`
	By     string `json:"by"`     // the user who edited
	Client string `json:"client"` // the connection that sent the edit
	ID     int64  `json:"id"`     // the edit's id on that connection
	Worker string `json:"worker"`
}

// Handle implements broker.Handler.
func (w *Workbook) Handle(ctx context.Context, m *broker.Message) ([]broker.Reply, error) {
	var req request
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return nil, fmt.Errorf("not a JSON request: %v", err)
	}
	ack := func() broker.Reply {
		b, _ := json.Marshal(Ack{Type: "ack", ID: req.ID, Worker: w.Name})
		return broker.ToSender(b)
	}
	switch req.Op {
	case "set":
		if req.Cell == "" {
			return nil, fmt.Errorf("set: no cell")
		}
		b, _ := json.Marshal(Cell{Type: "cell", Cell: req.Cell, Value: req.Value, By: m.User, Client: m.Client, ID: req.ID, Worker: w.Name})
		return []broker.Reply{ack(), broker.ToGroup(m.Group, b)}, nil
	case "work":
		if w.Log != nil {
			w.mu.Lock()
			fmt.Fprintf(w.Log, "working %s %d\n", m.Client, req.ID)
			w.mu.Unlock()
		}
		select {
		case <-time.After(time.Duration(req.MS) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return []broker.Reply{ack()}, nil
	case "echo":
		return []broker.Reply{ack()}, nil
	}
	return nil, fmt.Errorf("unknown op %q", req.Op)
}
