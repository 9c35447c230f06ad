package autograd

// Dropout zeroes each element with probability p and scales the rest by
// 1/(1−p) (inverted dropout). The mask is a pure function of key and the
// element index (a counter-based hash), so a recomputation (activation
// checkpointing) or a resumed run replays exactly the same mask: the caller
// derives key from explicit state (seed, micro-batch, layer).
func (tp *Tape) Dropout(x *Tensor, p float64, key uint64) *Tensor {
	if p <= 0 {
		return x
	}
	return tp.dropout(x, p, key, false)
}

func (tp *Tape) dropout(x *Tensor, p float64, key uint64, transient bool) *Tensor {
	if p >= 1 {
		panic("autograd: Dropout probability must be below 1")
	}
	y, shared := tp.output(x.Rows, x.Cols, x.Grad != nil, transient)
	keep := float32(1 / (1 - p))
	threshold := uint64(p * (1 << 53))
	fwd := func() {
		for i, v := range x.Data {
			if mix(key, uint64(i))>>11 < threshold {
				y.Data[i] = 0
			} else {
				y.Data[i] = v * keep
			}
		}
	}
	fwd()
	if shared {
		y.refill = fwd
	}
	if y.Grad != nil {
		tp.record(func() {
			for i, g := range y.Grad {
				if mix(key, uint64(i))>>11 >= threshold {
					x.Grad[i] += g * keep
				}
			}
		})
	}
	return y
}

// mix is SplitMix64's finalizer over key and counter: a fast, well-mixed hash.
func mix(key, i uint64) uint64 {
	z := key + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Key derives a dropout key from explicit training state.
func Key(seed uint64, parts ...uint64) uint64 {
	k := seed
	for _, p := range parts {
		k = mix(k, p)
	}
	return k
}
