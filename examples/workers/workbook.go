package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/globalsession/globalsession/gateway/broker"
	"github.com/globalsession/globalsession/relay"
)

// Workbook is the worker's logic: clients of a workbook (a group) edit cells, and every
// edit reaches everyone who has the workbook open. Messages are JSON:
//
//	{"op":"set","cell":"A1","value":"5","id":1}  ack to the sender, the cell to the group
//	{"op":"work","ms":300,"id":2}                 some slow work, then an ack
//	{"op":"echo","id":3}                          an ack from this worker
//
// It also draws the workbook's plot, plot.svg: a bar for each cell holding a number
// (GET /ws/<workbook>/files/plot.svg on the gateway instance that holds the browser's
// WebSocket). The cells it plots are those it handled and, with Relay, those every other
// worker handled since it first saw the workbook (broker.WatchGroup).
type Workbook struct {
	// Name is the worker's name, put in every reply so clients can see who served them.
	Name string
	// Log receives a line as slow work starts ("working <client> <id>").
	Log io.Writer
	// Relay, when set, is the worker's relay connection, on which it watches the
	// workbooks it has seen for the edits other workers handle.
	Relay *relay.Client

	mu    sync.Mutex                   // serializes Log writes; guards cells
	cells map[string]map[string]string // workbook -> cell -> value
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
	w.watch(m.Group)
	switch req.Op {
	case "set":
		if req.Cell == "" {
			return nil, fmt.Errorf("set: no cell")
		}
		w.setCell(m.Group, req.Cell, req.Value)
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

// watch starts keeping group's cells: on first sight, with Relay, it watches the group
// for edits other workers handle.
func (w *Workbook) watch(group string) {
	w.mu.Lock()
	_, seen := w.cells[group]
	if !seen {
		if w.cells == nil {
			w.cells = map[string]map[string]string{}
		}
		w.cells[group] = map[string]string{}
	}
	w.mu.Unlock()
	if seen || w.Relay == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := broker.WatchGroup(ctx, w.Relay, group, func(data []byte, _ bool) {
		var c Cell
		if json.Unmarshal(data, &c) == nil && c.Type == "cell" {
			w.setCell(group, c.Cell, c.Value)
		}
	})
	if err != nil && w.Log != nil {
		fmt.Fprintf(w.Log, "worker %s: %v\n", w.Name, err)
	}
}

func (w *Workbook) setCell(group, cell, value string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cells[group] == nil {
		if w.cells == nil {
			w.cells = map[string]map[string]string{}
		}
		w.cells[group] = map[string]string{}
	}
	w.cells[group][cell] = value
}

// ServeFile implements broker.FileHandler: plot.svg, the workbook's numeric cells as bars.
func (w *Workbook) ServeFile(_ context.Context, req *broker.FileRequest) (*broker.File, error) {
	if req.Name != "plot.svg" {
		return &broker.File{Status: http.StatusNotFound, ContentType: "text/plain; charset=utf-8",
			Body: []byte("no file " + req.Name + "; there is plot.svg")}, nil
	}
	w.watch(req.Group)
	w.mu.Lock()
	cells := maps.Clone(w.cells[req.Group])
	w.mu.Unlock()
	return &broker.File{ContentType: "image/svg+xml", Body: plot(req.Group, cells, w.Name)}, nil
}

// plot draws cells holding numbers as a bar chart, in cell order, scaled to the largest.
func plot(group string, cells map[string]string, worker string) []byte {
	type bar struct {
		cell  string
		value float64
	}
	var bars []bar
	top := 0.0
	for _, name := range slices.Sorted(maps.Keys(cells)) {
		if v, err := strconv.ParseFloat(cells[name], 64); err == nil && !math.IsInf(v, 0) && !math.IsNaN(v) {
			bars = append(bars, bar{name, v})
			top = max(top, math.Abs(v))
		}
	}
	const width, height, base = 400, 200, 170
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`, width, height, width, height)
	fmt.Fprintf(&b, `<title>%s, drawn by %s</title><line x1="0" y1="%d" x2="%d" y2="%d" stroke="black"/>`,
		html.EscapeString(group), html.EscapeString(worker), base, width, base)
	for i, br := range bars {
		h := 0.0
		if top > 0 {
			h = math.Abs(br.value) / top * (base - 20)
		}
		x := 10 + i*(width-20)/max(len(bars), 1)
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="steelblue"><title>%s = %s</title></rect>`,
			x, base-h, max((width-20)/max(len(bars), 1)-6, 2), h, html.EscapeString(br.cell), strconv.FormatFloat(br.value, 'g', -1, 64))
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12">%s</text>`, x, base+18, html.EscapeString(br.cell))
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}
