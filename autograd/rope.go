package autograd

import (
	"fmt"
	"math"
)

// RopeScaling is a config.json rope_scaling entry.
type RopeScaling struct {
	Type                          string  // "linear" or "llama3" ("" = none)
	Factor                        float64 // all types
	LowFreqFactor, HighFreqFactor float64 // llama3
	OriginalMaxPositions          int     // llama3
}

// Rope holds the rotation angles of rotary position embeddings for positions
// 0..MaxPos-1: Cos and Sin are (MaxPos, D/2).
type Rope struct {
	HeadDim     int
	MaxPos      int
	Interleaved bool // pairs (2i, 2i+1) as GGUF/Meta store Q,K; false: HF rotate-half pairs (i, i+D/2)
	Cos, Sin    []float32
	inv         []float64 // (D/2) inverse frequencies, scaling and factors applied
}

// NewRope computes the tables for head dimension d and base theta, with
// optional scaling, in float64 before rounding.
func NewRope(d int, theta float64, maxPos int, scaling *RopeScaling, interleaved bool) (*Rope, error) {
	return NewRopeFactors(d, theta, maxPos, scaling, nil, interleaved)
}

// NewRopeFactors is NewRope with per-frequency divisors (GGUF's rope_freqs
// tensor, how llama.cpp stores Llama-3 scaling): inv_freq[i] /= factors[i].
func NewRopeFactors(d int, theta float64, maxPos int, scaling *RopeScaling, factors []float32, interleaved bool) (*Rope, error) {
	inv, err := InvFreqs(d, theta, scaling)
	if err != nil {
		return nil, err
	}
	half := d / 2
	if factors != nil {
		if len(factors) != half {
			return nil, fmt.Errorf("rope: %d frequency factors for head dimension %d (want %d)", len(factors), d, half)
		}
		for i := range inv {
			inv[i] /= float64(factors[i])
		}
	}
	r := &Rope{HeadDim: d, Interleaved: interleaved, inv: inv}
	return r.Extend(maxPos), nil
}

// Extend returns a Rope with the same frequencies covering positions
// 0..maxPos-1: r itself when it already does, else a new one (r is left
// as it is, so a forward pass holding r may go on). Every angle is a
// function of its position alone, so the tables agree wherever both have
// a position.
func (r *Rope) Extend(maxPos int) *Rope {
	if maxPos <= r.MaxPos {
		return r
	}
	half := r.HeadDim / 2
	e := &Rope{HeadDim: r.HeadDim, MaxPos: maxPos, Interleaved: r.Interleaved, inv: r.inv,
		Cos: make([]float32, maxPos*half), Sin: make([]float32, maxPos*half)}
	copy(e.Cos, r.Cos)
	copy(e.Sin, r.Sin)
	for p := r.MaxPos; p < maxPos; p++ {
		for i, f := range r.inv {
			a := float64(p) * f
			e.Cos[p*half+i] = float32(math.Cos(a))
			e.Sin[p*half+i] = float32(math.Sin(a))
		}
	}
	return e
}

// InvFreqs returns RoPE's D/2 inverse frequencies θ^(−2i/D), scaled as
// scaling says.
func InvFreqs(d int, theta float64, scaling *RopeScaling) ([]float64, error) {
	if d%2 != 0 || d <= 0 {
		return nil, fmt.Errorf("rope: head dimension %d is not even", d)
	}
	half := d / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(theta, float64(2*i)/float64(d))
	}
	if scaling != nil {
		switch scaling.Type {
		case "", "default":
		case "linear":
			for i := range inv {
				inv[i] /= scaling.Factor
			}
		case "llama3":
			s := scaling
			if s.Factor <= 0 || s.LowFreqFactor <= 0 || s.HighFreqFactor <= s.LowFreqFactor || s.OriginalMaxPositions <= 0 {
				return nil, fmt.Errorf("rope: llama3 rope_scaling needs factor, low_freq_factor < high_freq_factor and original_max_position_embeddings")
			}
			lowWave := float64(s.OriginalMaxPositions) / s.LowFreqFactor
			highWave := float64(s.OriginalMaxPositions) / s.HighFreqFactor
			for i, f := range inv {
				wave := 2 * math.Pi / f
				switch {
				case wave < highWave: // high frequencies: unchanged
				case wave > lowWave: // low frequencies: scaled down
					inv[i] = f / s.Factor
				default: // smooth interpolation between the two
					sm := (float64(s.OriginalMaxPositions)/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
					inv[i] = (1-sm)*f/s.Factor + sm*f
				}
			}
		default:
			return nil, fmt.Errorf("rope: unsupported rope_scaling type %q (supported: linear, llama3)", scaling.Type)
		}
	}
	return inv, nil
}

// rotate applies the rotation at position pos (sign −1: the inverse) to one
// head vector x of length D, writing dst (may alias x).
func (r *Rope) rotate(dst, x []float32, pos int, sign float32) {
	half := r.HeadDim / 2
	c := r.Cos[pos*half : (pos+1)*half]
	s := r.Sin[pos*half : (pos+1)*half]
	if r.Interleaved {
		for i := 0; i < half; i++ {
			a, b := x[2*i], x[2*i+1]
			sn := sign * s[i]
			dst[2*i], dst[2*i+1] = a*c[i]-b*sn, b*c[i]+a*sn
		}
		return
	}
	for i := 0; i < half; i++ {
		a, b := x[i], x[i+half]
		sn := sign * s[i]
		dst[i], dst[i+half] = a*c[i]-b*sn, b*c[i]+a*sn
	}
}

// RoPE rotates every head of x (N, heads·D) by its row's position pos[n].
// Backward rotates the gradient back (the rotation is orthogonal).
func (tp *Tape) RoPE(x *Tensor, r *Rope, pos []int32) *Tensor {
	D := r.HeadDim
	if x.Cols%D != 0 || len(pos) != x.Rows {
		panic(fmt.Sprintf("autograd: RoPE: x is %d×%d, head dim %d, %d positions", x.Rows, x.Cols, D, len(pos)))
	}
	y := tp.out(x.Rows, x.Cols, x.Grad != nil)
	r.checkPos(pos)
	tp.Pool.Parallel(x.Rows, 16, func(_, lo, hi int) {
		for n := lo; n < hi; n++ {
			for h := 0; h < x.Cols; h += D {
				r.rotate(y.Data[n*x.Cols+h:][:D], x.Data[n*x.Cols+h:][:D], int(pos[n]), 1)
			}
		}
	})
	if y.Grad != nil {
		tp.record(func() {
			tmps := tp.scratch(D * tp.Pool.Threads())
			tp.Pool.Parallel(x.Rows, 16, func(w, lo, hi int) {
				tmp := tmps[w*D : (w+1)*D]
				for n := lo; n < hi; n++ {
					for h := 0; h < x.Cols; h += D {
						r.rotate(tmp, y.Grad[n*x.Cols+h:][:D], int(pos[n]), -1)
						g := x.Grad[n*x.Cols+h:][:D]
						for i, v := range tmp {
							g[i] += v
						}
					}
				}
			})
		})
	}
	return y
}

func (r *Rope) checkPos(pos []int32) {
	for n := range pos {
		if p := int(pos[n]); p < 0 || p >= r.MaxPos {
			panic(fmt.Sprintf("autograd: RoPE: position %d outside [0, %d)", p, r.MaxPos))
		}
	}
}
