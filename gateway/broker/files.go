package broker

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/web"
	"github.com/globalsession/globalsession/relay"
)

// Files: a client that holds a group's WebSocket on an instance may GET
// <...>/ws/<group>/files/<name> there (a workbook's plots, say). The request goes through
// the worker queue like a message, marked as a file request, and the worker's FileHandler
// answers with a status, a content type and a body:
//
//	file reply: version 1 | status u16 | content type u16+bytes | body (the rest)

// flagFile marks a request envelope as a file request; its data is the file's name.
const flagFile = 0x02

// DefaultMaxFileSize bounds a file's body when the config leaves it out.
const DefaultMaxFileSize = 512 << 10

// FileRequest is a client's request for a file of its group, as a worker receives it.
type FileRequest struct {
	// Client is the WebSocket connection of the asking session in the group.
	Client string
	// User, Group, Token and ID are as in Message.
	User, Group, Token, ID string
	// Name is the file asked for (the path after /files/).
	Name string
}

// File is a worker's answer to a FileRequest.
type File struct {
	// Status is the HTTP status. Zero means 200.
	Status int
	// ContentType is the body's media type. Empty means application/octet-stream.
	ContentType string
	// Body is the file, at most the worker's and the broker's MaxFileSize.
	Body []byte
}

// FileHandler serves a worker's files (see WorkerConfig.Files).
type FileHandler interface {
	ServeFile(ctx context.Context, req *FileRequest) (*File, error)
}

// FileHandlerFunc adapts a function to a FileHandler.
type FileHandlerFunc func(ctx context.Context, req *FileRequest) (*File, error)

// ServeFile implements FileHandler.
func (f FileHandlerFunc) ServeFile(ctx context.Context, req *FileRequest) (*File, error) {
	return f(ctx, req)
}

// encodeFile encodes a worker's file answer.
func encodeFile(f *File) ([]byte, error) {
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		return nil, fmt.Errorf("%w: file status %d", ErrBadEnvelope, f.Status)
	}
	b := make([]byte, 0, 5+len(f.ContentType)+len(f.Body))
	b = append(b, envelopeVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(f.Status))
	b, err := appendString16(b, f.ContentType)
	if err != nil {
		return nil, err
	}
	return append(b, f.Body...), nil
}

// decodeFile decodes a worker's file answer.
func decodeFile(b []byte) (*File, error) {
	r := envelopeReader{b: b}
	r.version()
	st := r.bytesN(2, "file status")
	f := &File{ContentType: r.string16("content type")}
	if r.err != nil {
		return nil, r.err
	}
	f.Status = int(binary.BigEndian.Uint16(st))
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		return nil, fmt.Errorf("%w: file status %d", ErrBadEnvelope, f.Status)
	}
	f.Body = r.b
	return f, nil
}

// serveFile answers a worker's file request with w's Files handler.
func (w *Worker) serveFile(ctx context.Context, m *Message) ([]byte, error) {
	if w.cfg.Files == nil {
		return encodeFile(&File{Status: http.StatusNotFound, ContentType: "text/plain; charset=utf-8",
			Body: []byte("worker " + w.cfg.Name + " serves no files")})
	}
	f, err := w.cfg.Files.ServeFile(ctx, &FileRequest{Client: m.Client, User: m.User, Group: m.Group, Token: m.Token,
		ID: m.ID, Name: string(m.Data)})
	if err != nil {
		return nil, err
	}
	if len(f.Body) > w.cfg.MaxFileSize {
		return nil, fmt.Errorf("file %q of %d bytes is larger than the worker's limit of %d", m.Data, len(f.Body), w.cfg.MaxFileSize)
	}
	return encodeFile(f)
}

// fileRequest parses a file request's path: <...>/ws/<group>/files/<name>.
func fileRequest(r *http.Request) (group, name string, ok bool) {
	p := r.URL.Path
	i := strings.LastIndex(p, "/ws/")
	if i < 0 {
		return "", "", false
	}
	group, name, ok = strings.Cut(p[i+len("/ws/"):], "/files/")
	return group, name, ok
}

// validFileName checks a file name from a URL.
func validFileName(n string) error {
	switch {
	case n == "":
		return errors.New("no file name in the path (/ws/<group>/files/<name>)")
	case len(n) > 256:
		return fmt.Errorf("file name of %d bytes (the limit is 256)", len(n))
	case strings.ContainsFunc(n, unicode.IsControl) || strings.Contains(n, "/") || n == "..":
		return fmt.Errorf("file name %q has a slash or a control character", n)
	}
	return nil
}

// serveFile answers GET <...>/ws/<group>/files/<name> for session s, if s holds the group's
// WebSocket on this instance.
func (b *Broker) serveFile(w http.ResponseWriter, r *http.Request, s *gateway.Session, group, name string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "files are read with GET", http.StatusMethodNotAllowed)
		return
	}
	if err := errors.Join(validGroup(group), validFileName(name)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, release, status := b.admitFile(s, group)
	if status != 0 {
		msgs := map[int]string{http.StatusForbidden: "only a session with the group's WebSocket open on this instance may ask for its files",
			http.StatusTooManyRequests: "too many file requests of this session at once"}
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, msgs[status], status)
		return
	}
	defer release()
	f, err := b.fetchFile(r.Context(), c, name)
	if err != nil {
		b.fileError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", cmp.Or(f.ContentType, "application/octet-stream"))
	h.Set("Content-Length", strconv.Itoa(len(f.Body)))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(max(f.Status, http.StatusOK))
	w.Write(f.Body)
}

// admitFile finds s's client in group on this instance and counts a file request of s;
// release uncounts it. status is 403 without such a client, 429 when s has
// MaxFileRequests under way.
func (b *Broker) admitFile(s *gateway.Session, group string) (c *brokerClient, release func(), status int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g := b.groups[group]; g != nil {
		for m := range g.members {
			if m.session.ID == s.ID {
				c = m
				break
			}
		}
	}
	if c == nil {
		return nil, nil, http.StatusForbidden
	}
	if b.fileReqs[s.ID] >= b.cfg.MaxFileRequests {
		return nil, nil, http.StatusTooManyRequests
	}
	b.fileReqs[s.ID]++
	return c, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.fileReqs[s.ID]--; b.fileReqs[s.ID] <= 0 {
			delete(b.fileReqs, s.ID)
		}
	}, 0
}

// errFileTooLarge means a worker's file is over the broker's MaxFileSize.
var errFileTooLarge = errors.New("the worker's file is larger than the limit")

// fetchFile asks the worker queue for name on behalf of client c.
func (b *Broker) fetchFile(ctx context.Context, c *brokerClient, name string) (*File, error) {
	token, err := c.backendToken(b)
	if err != nil {
		return nil, fmt.Errorf("sign the session's token: %w", err)
	}
	req, err := encodeRequest(&Message{User: c.session.User, Group: c.group, Token: token, Data: []byte(name),
		ID: c.id + "/f" + strconv.FormatUint(b.next.Add(1), 10)})
	if err != nil {
		return nil, err
	}
	req[1] |= flagFile
	ctx, cancel := context.WithTimeout(ctx, b.cfg.FileTimeout)
	defer cancel()
	out, err := b.cfg.Relay.Request(ctx, QueuePath(b.cfg.Queue), []byte(c.id), req)
	if err != nil {
		return nil, err
	}
	f, err := decodeFile(out)
	if err != nil {
		return nil, err
	}
	if len(f.Body) > b.cfg.MaxFileSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", errFileTooLarge, len(f.Body), b.cfg.MaxFileSize)
	}
	return f, nil
}

// fileError answers a failed file request with what the browser may know.
func (b *Broker) fileError(w http.ResponseWriter, r *http.Request, err error) {
	var re *relay.RemoteError
	switch {
	case errors.Is(err, relay.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		http.Error(w, "no worker answered in time", http.StatusGatewayTimeout)
	case errors.Is(err, errFileTooLarge):
		web.Fail(w, r, b.cfg.Logger, http.StatusBadGateway, "the file is larger than this gateway serves", err, false)
	case errors.As(err, &re):
		web.Fail(w, r, b.cfg.Logger, http.StatusBadGateway, "the worker could not serve the file", err, false)
	case errors.Is(err, relay.ErrUnavailable):
		web.Fail(w, r, b.cfg.Logger, http.StatusServiceUnavailable, "the broker is unreachable; try again", err, false)
	default:
		web.Fail(w, r, b.cfg.Logger, http.StatusBadGateway, "the file could not be fetched", err, false)
	}
}
