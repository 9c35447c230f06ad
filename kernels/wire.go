package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// The binary form of a Weight (caches of quantized bases): a fixed
// little-endian header, then the arrays the format holds, each checked
// against the shape on the way back.

const wireMagic = "LRW1"

type wireHeader struct {
	Magic               [4]byte
	Format              uint8
	DoubleQuant         uint8
	_                   [2]byte
	Rows, Cols          uint32
	F32, U16, Q, Absmax uint64 // array lengths, in elements
	Code, Scale         uint64
	Offset              float32
	_                   uint32
}

// MarshalBinary encodes W, double-quantized NF4 included.
func (w *Weight) MarshalBinary() ([]byte, error) {
	h := wireHeader{Format: uint8(w.Format), Rows: uint32(w.Rows), Cols: uint32(w.Cols),
		F32: uint64(len(w.f32)), U16: uint64(len(w.u16)), Q: uint64(len(w.q)), Absmax: uint64(len(w.absmax))}
	copy(h.Magic[:], wireMagic)
	if w.dq != nil {
		h.DoubleQuant, h.Code, h.Scale, h.Offset = 1, uint64(len(w.dq.code)), uint64(len(w.dq.scale)), w.dq.offset
	}
	size := int(unsafe.Sizeof(h)) + 4*len(w.f32) + 2*len(w.u16) + len(w.q) + 4*len(w.absmax)
	if w.dq != nil {
		size += len(w.dq.code) + 4*len(w.dq.scale)
	}
	b := make([]byte, 0, size)
	b, err := binary.Append(b, binary.LittleEndian, &h)
	if err != nil {
		return nil, err
	}
	b = append(b, asBytes(w.f32)...)
	b = append(b, asBytes(w.u16)...)
	b = append(b, w.q...)
	b = append(b, asBytes(w.absmax)...)
	if w.dq != nil {
		b = append(b, asBytes(w.dq.code)...)
		b = append(b, asBytes(w.dq.scale)...)
	}
	return b, nil
}

// UnmarshalWeight decodes MarshalBinary's bytes into a new Weight (copying),
// refusing any header or length that does not fit its format and shape.
func UnmarshalWeight(b []byte) (*Weight, error) {
	var h wireHeader
	n, err := binary.Decode(b, binary.LittleEndian, &h)
	if err != nil || string(h.Magic[:]) != wireMagic {
		return nil, fmt.Errorf("kernels: not an encoded weight")
	}
	b = b[n:]
	f := Format(h.Format)
	if int(f) >= len(formatNames) || h.Rows == 0 || h.Cols == 0 || h.Rows > math.MaxInt32 || h.Cols > math.MaxInt32 {
		return nil, fmt.Errorf("kernels: encoded weight: bad header")
	}
	w := newWeight(f, int(h.Rows), int(h.Cols))
	cells, blocks := uint64(w.Rows)*uint64(w.Cols), uint64(w.Rows)*uint64(w.blocksPerRow)
	var want wireHeader // the lengths this format and shape hold
	switch f {
	case F32:
		want.F32 = cells
	case F16, BF16:
		want.U16 = cells
	case Q8_0, Q4_0:
		want.Q = blocks * uint64(f.blockBytes())
	case NF4:
		want.Q = blocks * 32
		if h.DoubleQuant == 1 {
			want.Code, want.Scale = blocks, (blocks+dqGroup-1)/dqGroup
		} else {
			want.Absmax = blocks
		}
	}
	if h.DoubleQuant > 1 || (h.DoubleQuant == 1 && f != NF4) || h.F32 != want.F32 || h.U16 != want.U16 || h.Q != want.Q ||
		h.Absmax != want.Absmax || h.Code != want.Code || h.Scale != want.Scale {
		return nil, fmt.Errorf("kernels: encoded %s weight %d×%d: array lengths do not fit", f, w.Rows, w.Cols)
	}
	need := 4*h.F32 + 2*h.U16 + h.Q + 4*h.Absmax + h.Code + 4*h.Scale
	if uint64(len(b)) != need {
		return nil, fmt.Errorf("kernels: encoded %s weight %d×%d: %d bytes of arrays, want %d", f, w.Rows, w.Cols, len(b), need)
	}
	take := func(n uint64) []byte {
		p := b[:n:n]
		b = b[n:]
		return p
	}
	if h.F32 > 0 {
		w.f32 = copyAs[float32](take(4 * h.F32))
	}
	if h.U16 > 0 {
		w.u16 = copyAs[uint16](take(2 * h.U16))
	}
	if h.Q > 0 {
		w.q = append([]byte(nil), take(h.Q)...)
	}
	if h.Absmax > 0 {
		w.absmax = copyAs[float32](take(4 * h.Absmax))
	}
	if h.DoubleQuant == 1 {
		code := take(h.Code)
		w.dq = &nf4Double{offset: h.Offset, code: make([]int8, len(code)), scale: copyAs[float32](take(4 * h.Scale))}
		for i, c := range code {
			w.dq.code[i] = int8(c)
		}
	}
	return w, nil
}

// asBytes views a slice's memory as bytes (little-endian CPUs only).
func asBytes[T float32 | uint16 | int8](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(s[0])))
}

// copyAs copies little-endian bytes into a new slice of T.
func copyAs[T float32 | uint16](b []byte) []T {
	var z T
	out := make([]T, len(b)/int(unsafe.Sizeof(z)))
	copy(asBytes(out), b)
	return out
}
