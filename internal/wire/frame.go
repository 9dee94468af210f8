package wire

import (
	"errors"
	"fmt"
)

// Version is the protocol version this package speaks.
const Version = 2

// HeaderSize is the size of a frame's fixed header, after the 4-byte length prefix.
const HeaderSize = 36

// DefaultMaxFrame is the default limit on a frame's length (the bytes after the prefix).
const DefaultMaxFrame = 1 << 20

// Op is a frame's operation.
type Op uint8

// Operations. Requests carry a nonzero ID and get exactly one OpReply with the same ID.
// OpMessage is pushed to a subscriber and is never answered.
const (
	OpHello       Op = 1  // Value: [max version][secret]; Key: the peer's name
	OpSet         Op = 2  // store Key=Value until Expiry on Path
	OpGet         Op = 3  // fetch Key on Path
	OpDelete      Op = 4  // remove Key on Path everywhere
	OpPublish     Op = 5  // store (on intercepted paths) and deliver to Path's subscribers
	OpSubscribe   Op = 6  // receive OpMessage frames for Path
	OpUnsubscribe Op = 7  // stop them
	OpPing        Op = 8  // liveness; answered with StatusOK
	OpReply       Op = 9  // the answer to a request: Status says which kind
	OpMessage     Op = 10 // a publication or deletion pushed to a subscriber (ID 0)
	OpEvict       Op = 11 // an entry pushed out of an upper tier's table: keep it if you can
	OpRequest     Op = 12 // hand Key=Value to one member of Path's queue; its answer is the reply
	OpMembers     Op = 13 // list the members of Path's queue
	opMax         Op = 13
)

var opNames = [...]string{"", "hello", "set", "get", "delete", "publish", "subscribe",
	"unsubscribe", "ping", "reply", "message", "evict", "request", "members"}

func (o Op) String() string {
	if o == 0 || o > opMax {
		return fmt.Sprintf("op(%d)", uint8(o))
	}
	return opNames[o]
}

// IsRequest reports whether frames with this op expect a reply.
func (o Op) IsRequest() bool { return o != OpReply && o != OpMessage && o != 0 && o <= opMax }

// Status is the kind of a reply.
type Status uint8

// Reply statuses. Every reply has the same shape; Status says how to read it.
const (
	StatusOK       Status = 0 // done; for a delete, Flags&FlagExisted says whether the key was there
	StatusValue    Status = 1 // Value and Expiry hold the entry asked for
	StatusNotFound Status = 2 // no such entry
	StatusError    Status = 3 // Value holds a human-readable message
	statusMax      Status = 3
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusValue:
		return "value"
	case StatusNotFound:
		return "not found"
	case StatusError:
		return "error"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Flags.
const (
	// FlagExisted, on a reply to a delete, says the key held an entry.
	FlagExisted uint8 = 1 << 0
	// FlagNoOwner, on an ok reply to an evict, says the receiver knows no server to keep
	// evictions: it dropped them (and counts them).
	FlagNoOwner uint8 = 1 << 1
	// FlagDeleted, on a message, says the key was deleted (Value is empty).
	FlagDeleted uint8 = 1 << 0
	// FlagNoFanout, on a publish, asks the relay to store and forward below but not to
	// deliver to other subscribers.
	FlagNoFanout uint8 = 1 << 1
	// FlagNoReply, on a set or evict, says the sender wants no reply (its id is 0): bulk
	// hand-downs that nothing waits for.
	FlagNoReply uint8 = 1 << 2
	// FlagQueue, on a subscribe or unsubscribe, joins or leaves Path's queue instead of
	// its publications; Key is the member's label.
	FlagQueue uint8 = 1 << 3
	// FlagResume, on a subscribe, resumes the server's stream of Path's changes from the
	// position in Value (see ResumeRequest); the reply carries the changes missed since.
	FlagResume uint8 = 1 << 4
	// FlagDurable, on a publish or set, asks for the strict write concern: the answer
	// comes once the key's aging relief servers hold the entry, and is an error when they
	// cannot be reached.
	FlagDurable uint8 = 1 << 5
	// FlagBatch, on an evict, says Value holds a batch of hand-downs (see AppendBatch)
	// instead of one entry: Key is empty, and the one reply answers for all of them.
	FlagBatch uint8 = 1 << 6
	// FlagCopy, on an evict, says the entry is a copy of a lower tier's answer, which may
	// end before its version does (a relief server's max_life): once its expiry passes it
	// answers nothing, and it does not end its version as an expired entry does.
	FlagCopy uint8 = 1 << 7
)

// Frame is one protocol unit. Path, Key and Value of a decoded frame point into the
// reader's buffer and are valid only until the next read.
type Frame struct {
	Op     Op
	Status Status
	Flags  uint8
	ID     uint64
	Expiry int64 // unix nanoseconds; 0 means no expiry
	// Rev is the revision of the entry or deletion the frame carries: of two versions of a
	// key, the one with the higher revision wins, and a deletion wins a tie. 0 means none.
	Rev   uint64
	Path  []byte
	Key   []byte
	Value []byte
}

// Len returns the frame's length as written in its prefix.
func (f *Frame) Len() int { return HeaderSize + len(f.Path) + len(f.Key) + len(f.Value) }

func (f *Frame) String() string {
	return fmt.Sprintf("%s id=%d status=%s flags=%#x path=%q key=%q value=%d bytes expiry=%d rev=%d",
		f.Op, f.ID, f.Status, f.Flags, f.Path, f.Key, len(f.Value), f.Expiry, f.Rev)
}

// Errors of the codec. A connection that produces one must be closed: the stream can no
// longer be trusted to be at a frame boundary.
var (
	// ErrFrameTooLarge means a frame's length exceeds the limit.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrMalformed means a frame's bytes do not form a valid frame.
	ErrMalformed = errors.New("wire: malformed frame")
)
