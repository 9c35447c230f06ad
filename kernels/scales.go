package kernels

import (
	"encoding/binary"
	"fmt"

	"github.com/x448/float16"
)

// Block scales of the 8- and 4-bit formats, exposed so that a loss-aware step
// can tune them with the codes fixed (W[i][j] = s[i][j/BlockSize]·code[i][j]).

// ScaledBlocks reports whether W has per-block scales that SetBlockScales can
// replace: Q8_0, Q4_0, and NF4 whose scales are not double-quantized.
func (w *Weight) ScaledBlocks() bool {
	switch w.Format {
	case Q8_0, Q4_0:
		return true
	case NF4:
		return w.dq == nil
	}
	return false
}

// BlocksPerRow is the number of blocks (scales) in each row.
func (w *Weight) BlocksPerRow() int { return w.blocksPerRow }

// BlockScales returns a copy of W's block scales, Rows × BlocksPerRow
// row-major, as fp32 (Q8_0 and Q4_0 hold them as fp16). Q4_0's scale is
// ggml's d, which is negative when a block's largest magnitude is negative.
func (w *Weight) BlockScales() ([]float32, error) {
	if !w.ScaledBlocks() {
		return nil, fmt.Errorf("kernels: %s weight has no tunable block scales", w.describe())
	}
	n := w.Rows * w.blocksPerRow
	s := make([]float32, n)
	if w.Format == NF4 {
		copy(s, w.absmax)
		return s, nil
	}
	bb := w.Format.blockBytes()
	for k := range s {
		s[k] = F16ToF32(binary.LittleEndian.Uint16(w.q[k*bb:]))
	}
	return s, nil
}

// SetBlockScales replaces W's block scales (the layout of BlockScales),
// keeping the codes; Q8_0 and Q4_0 round them to fp16. W must not be in use
// by a concurrent reader.
func (w *Weight) SetBlockScales(s []float32) error {
	if !w.ScaledBlocks() {
		return fmt.Errorf("kernels: %s weight has no tunable block scales", w.describe())
	}
	if len(s) != w.Rows*w.blocksPerRow {
		return fmt.Errorf("kernels: %d block scales for a %s weight with %d", len(s), w.describe(), w.Rows*w.blocksPerRow)
	}
	if w.Format == NF4 {
		copy(w.absmax, s)
		return nil
	}
	bb := w.Format.blockBytes()
	for k, v := range s {
		binary.LittleEndian.PutUint16(w.q[k*bb:], float16.Fromfloat32(v).Bits())
	}
	return nil
}

// AddScaleGrad adds to ds (the layout of BlockScales) the gradient of the
// block scales given dW, the gradient of the whole fp32 matrix (Rows × Cols):
// ds[i][b] += Σ_{j in block b} dW[i][j]·code[i][j], the codes being the
// values W holds before scaling (Q8_0: the int8; Q4_0: nibble − 8; NF4: the
// codebook value).
func (w *Weight) AddScaleGrad(ds []float32, dw Mat) {
	if !w.ScaledBlocks() || len(ds) != w.Rows*w.blocksPerRow || dw.Rows != w.Rows || dw.Cols != w.Cols {
		panic(fmt.Sprintf("kernels: AddScaleGrad: %s weight, %d scales, dW %d×%d", w.describe(), len(ds), dw.Rows, dw.Cols))
	}
	bs := w.Format.BlockSize()
	var codes [maxBlock]float32
	for i := 0; i < w.Rows; i++ {
		g := dw.Row(i)
		for b := 0; b < w.blocksPerRow; b++ {
			k := i*w.blocksPerRow + b
			w.blockCodes(codes[:bs], k)
			var sum float32
			for j := b * bs; j < min(w.Cols, (b+1)*bs); j++ {
				sum += g[j] * codes[j-b*bs]
			}
			ds[k] += sum
		}
	}
}

// blockCodes writes block k's unscaled values into dst (BlockSize long).
func (w *Weight) blockCodes(dst []float32, k int) {
	switch w.Format {
	case Q8_0:
		for j, v := range w.q[k*34+2 : k*34+34] {
			dst[j] = float32(int8(v))
		}
	case Q4_0:
		for j, v := range w.q[k*18+2 : k*18+18] {
			dst[j] = float32(int(v&15) - 8)
			dst[j+16] = float32(int(v>>4) - 8)
		}
	case NF4:
		for j, v := range w.q[k*32 : k*32+32] {
			dst[2*j] = nf4Code[v>>4]
			dst[2*j+1] = nf4Code[v&15]
		}
	}
}

func (w *Weight) describe() string {
	s := fmt.Sprintf("%s %d×%d", w.Format, w.Rows, w.Cols)
	if w.dq != nil {
		s += " double-quantized"
	}
	return s
}
