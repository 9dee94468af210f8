package tlsrecord

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzOpen feeds Open two streams cut into pieces of a size the input chooses: the input's
// data sealed in records of sizes it chooses too (with a key update between), which must
// open to the same data; and the input itself, raw, which must end in an error or be held
// (never more than a record) without a panic.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{1, 3, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{7, 0, typeApplicationData, 3, 3, 0, 20, 1, 2, 3})
	f.Add(append([]byte{200, 255}, bytes.Repeat([]byte("x"), 40000)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		cut, recordSize, data := int(in[0])+1, int(in[1])*97+1, in[2:]
		data = data[:min(len(data), 1<<15)] // a few records of the largest size at most
		if len(data)/recordSize > 64 {
			recordSize = len(data)/64 + 1
		}
		client, server := streamPair(t)
		var wire []byte
		for i := 0; i < len(data); i += recordSize {
			if i > 0 && i/recordSize == 1 {
				client.ask = true // the second record goes after a key update that asks for one
			}
			wire = client.Seal(wire, data[i:min(i+recordSize, len(data))])
		}
		var got []byte
		for i := 0; i < len(wire); i += cut {
			piece := append([]byte(nil), wire[i:min(i+cut, len(wire))]...)
			d, err := server.Open(piece)
			require.NoError(t, err)
			got = append(got, d...)
		}
		require.Equal(t, string(data), string(got))
		require.Empty(t, server.held)
		require.Equal(t, len(data) > recordSize, server.UpdateOwed(), "the peer's update asked for ours")

		_, garbage := streamPair(t)
		for i := 0; i < len(in); i += cut {
			_, err := garbage.Open(append([]byte(nil), in[i:min(i+cut, len(in))]...))
			require.LessOrEqual(t, len(garbage.held), headerLen+maxCiphertext)
			if err != nil {
				require.ErrorIs(t, err, ErrRecord)
				break
			}
		}
	})
}
