package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// DefaultQueue is the worker queue a Broker and a Worker use when their config names none.
const DefaultQueue = "workers"

// Message is one message a client sent through a Broker, as a worker receives it.
type Message struct {
	// Client identifies the sending connection ("<gateway instance>/<n>"): ToClient
	// reaches it later, from any worker.
	Client string
	// User is the sender's user name (from the login session).
	User string
	// Group is the group (workbook, document) the client opened.
	Group string
	// Token is the JWT the gateway signed for the user's session: verify it to trust User.
	Token string
	// ID identifies this message, the same on every delivery of it: the relay hands a
	// message to another worker when the first one's connection is lost while it holds
	// it, so a handler may run twice for one message (at least once). A handler whose
	// effect must happen once records the IDs it has applied.
	ID string
	// Data is the message as the client sent it.
	Data []byte
	// Binary says the client sent a binary message rather than text.
	Binary bool

	file bool // a file request (see FileRequest), for the worker's Files
}

// ReplyKind says who a Reply goes to.
type ReplyKind uint8

// Reply kinds.
const (
	// ReplyToSender goes to the client that sent the message being handled.
	ReplyToSender ReplyKind = 1
	// ReplyToClient goes to the client named by Target (a Message.Client).
	ReplyToClient ReplyKind = 2
	// ReplyToGroup goes to every client of the group named by Target, on every gateway
	// instance, the sender included if it belongs to the group.
	ReplyToGroup ReplyKind = 3
)

// String names the kind: "sender", "client" or "group".
func (k ReplyKind) String() string {
	switch k {
	case ReplyToSender:
		return "sender"
	case ReplyToClient:
		return "client"
	case ReplyToGroup:
		return "group"
	}
	return fmt.Sprintf("ReplyKind(%d)", uint8(k))
}

// Reply is a message a worker sends back to clients.
type Reply struct {
	Kind   ReplyKind
	Target string // the client id or group name; empty for ReplyToSender
	Data   []byte
	Binary bool // send as a binary message rather than text
}

// ToSender returns a text reply to the sender of the message being handled.
func ToSender(data []byte) Reply { return Reply{Kind: ReplyToSender, Data: data} }

// ToGroup returns a text reply to every client of group.
func ToGroup(group string, data []byte) Reply {
	return Reply{Kind: ReplyToGroup, Target: group, Data: data}
}

// ToClient returns a text reply to the client with id client (a Message.Client).
func ToClient(client string, data []byte) Reply {
	return Reply{Kind: ReplyToClient, Target: client, Data: data}
}

func (rp Reply) check() error {
	switch rp.Kind {
	case ReplyToSender:
		if rp.Target != "" {
			return fmt.Errorf("%w: a reply to the sender names a target (%q)", ErrBadEnvelope, rp.Target)
		}
		return nil
	case ReplyToClient:
		if _, ok := instanceOf(rp.Target); !ok {
			return fmt.Errorf("%w: reply to client %q: not a client id", ErrBadEnvelope, rp.Target)
		}
		return nil
	case ReplyToGroup:
		if rp.Target == "" {
			return fmt.Errorf("%w: reply to a group with no group name", ErrBadEnvelope)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown reply kind %d", ErrBadEnvelope, uint8(rp.Kind))
}

// Handler does a worker's work: it handles one client message and returns the replies to
// send. An error goes back to the sender as an error notice (see Broker); the replies are
// then not sent.
type Handler interface {
	Handle(ctx context.Context, msg *Message) ([]Reply, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, msg *Message) ([]Reply, error)

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, msg *Message) ([]Reply, error) { return f(ctx, msg) }

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Relay is the connection to the relay that brokers the messages. Required; the
	// worker does not close it.
	Relay *relay.Client
	// Queue is the worker queue to serve. Empty means DefaultQueue.
	Queue string
	// Name labels this worker in the queue's member list. Empty means host-pid.
	Name string
	// Handler does the work. Required.
	Handler Handler
	// Files serves the files clients ask for under their group (GET
	// <...>/ws/<group>/files/<name> on a gateway instance). Nil answers every such request
	// 404.
	Files FileHandler
	// MaxFileSize bounds a file's body; a larger one is an error to the client. Zero means
	// DefaultMaxFileSize.
	MaxFileSize int
	// Concurrency bounds the messages (and file requests) handled at once; more wait.
	// Zero means 64.
	Concurrency int
	// Logger receives handler failures. Nil means no logging.
	Logger *slog.Logger
}

// Worker serves a queue of client messages that Brokers publish: the relay hands each
// message to one live worker of the queue, the least busy one, and hands it to another
// when a worker's connection is lost while it holds it: a message may be handled twice (at
// least once), so a handler should be idempotent. Workers join on start and
// leave when they close or their connection drops; nothing else needs to be restarted.
type Worker struct {
	cfg     WorkerConfig
	sem     chan struct{}
	handled atomic.Uint64
	failed  atomic.Uint64
	once    sync.Once

	mu     sync.Mutex
	active int           // messages being handled
	idle   chan struct{} // closed when active drops to 0, while Shutdown waits
}

// NewWorker joins cfg.Queue on cfg.Relay and serves it until Close.
func NewWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	if cfg.Relay == nil || cfg.Handler == nil {
		return nil, errors.New("gateway: worker config needs a relay and a handler")
	}
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{cfg: cfg, sem: make(chan struct{}, cfg.Concurrency)}
	if err := cfg.Relay.Join(ctx, QueuePath(cfg.Queue), cfg.Name, w.serve); err != nil {
		return nil, fmt.Errorf("gateway: worker %s: join queue %q: %w", cfg.Name, cfg.Queue, err)
	}
	return w, nil
}

// serve handles one request from the relay.
func (w *Worker) serve(ctx context.Context, key, value []byte) (out []byte, err error) {
	msg, err := decodeRequest(string(key), value)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.active++
	w.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			w.cfg.Logger.Error("gateway: worker handler panicked", "worker", w.cfg.Name, "panic", p)
			out, err = nil, fmt.Errorf("worker %s failed on the message", w.cfg.Name)
		}
		if err != nil {
			w.failed.Add(1)
		} else {
			w.handled.Add(1)
		}
		w.mu.Lock()
		if w.active--; w.active == 0 && w.idle != nil {
			close(w.idle)
			w.idle = nil
		}
		w.mu.Unlock()
	}()
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("worker %s busy: %w", w.cfg.Name, ctx.Err())
	}
	defer func() { <-w.sem }()
	if msg.file {
		return w.serveFile(ctx, msg)
	}
	replies, err := w.cfg.Handler.Handle(ctx, msg)
	if err != nil {
		return nil, err
	}
	return encodeReplies(replies)
}

// Publish sends a message to clients outside of any request: a group (ToGroup) or one
// client (ToClient), on whichever gateway instance holds them.
func (w *Worker) Publish(ctx context.Context, rp Reply) error {
	return publishReply(ctx, w.cfg.Relay, rp)
}

// publishReply puts a group or client reply on its relay path.
func publishReply(ctx context.Context, c *relay.Client, rp Reply) error {
	if err := rp.check(); err != nil {
		return err
	}
	push := encodePush(rp.Binary, rp.Data)
	switch rp.Kind {
	case ReplyToGroup:
		return c.Publish(ctx, GroupPath(rp.Target), []byte(rp.Target), sessioncache.Entry{Value: push})
	case ReplyToClient:
		inst, _ := instanceOf(rp.Target)
		return c.Publish(ctx, InboxPath(inst), []byte(rp.Target), sessioncache.Entry{Value: push})
	}
	return fmt.Errorf("gateway: publish: a %s reply needs a message to answer", rp.Kind)
}

// Handled returns how many messages the worker handled successfully, and how many failed.
func (w *Worker) Handled() (ok, failed uint64) { return w.handled.Load(), w.failed.Load() }

// Name returns the worker's label in the queue.
func (w *Worker) Name() string { return w.cfg.Name }

// Shutdown leaves the queue, so no new message comes, and waits for the messages being
// handled to be answered, or returns ctx's error first. The relay connection stays open.
func (w *Worker) Shutdown(ctx context.Context) error {
	var err error
	w.once.Do(func() {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if lerr := w.cfg.Relay.Leave(lctx, QueuePath(w.cfg.Queue)); lerr != nil {
			err = fmt.Errorf("gateway: worker %s: leave: %w", w.cfg.Name, lerr)
		}
		w.mu.Lock()
		if w.active == 0 {
			w.mu.Unlock()
			return
		}
		w.idle = make(chan struct{})
		idle := w.idle
		w.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
		}
	})
	return err
}

// Close is Shutdown without a deadline.
func (w *Worker) Close() error { return w.Shutdown(context.Background()) }

// WatchGroup calls fn with every message sent to group's clients (ToGroup replies and
// Worker.Publish to the group), whichever worker sent it, until stop: a worker that keeps
// a group's state (a workbook's cells, for its plots) learns the edits other workers
// handled. fn runs on c's delivery goroutine, so it should be quick. One watch per group
// and relay client.
func WatchGroup(ctx context.Context, c *relay.Client, group string, fn func(data []byte, binary bool)) (stop func(context.Context) error, err error) {
	path := GroupPath(group)
	err = c.Subscribe(ctx, path, func(ch sessioncache.Change) {
		if bin, data, err := decodePush(ch.Value); err == nil {
			fn(data, bin)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: watch group %q: %w", group, err)
	}
	return func(ctx context.Context) error { return c.Unsubscribe(ctx, path) }, nil
}
