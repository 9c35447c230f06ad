package autograd

import (
	"fmt"

	"github.com/lowrank/lowrank/kernels"
)

// EmbedFrozen gathers rows ids of a frozen table (V × C, any storage format).
func (tp *Tape) EmbedFrozen(ids []int32, table *kernels.Weight) *Tensor {
	y := tp.out(len(ids), table.Cols, false)
	for i, id := range ids {
		if id < 0 || int(id) >= table.Rows {
			panic(fmt.Sprintf("autograd: token id %d outside the vocabulary of %d", id, table.Rows))
		}
		tp.Pool.Path().DecodeRow(table, y.Row(i), int(id))
	}
	return y
}

// Embed gathers rows ids of a trainable table; backward adds each row's
// gradient to the table rows that were used.
func (tp *Tape) Embed(ids []int32, table *Tensor) *Tensor {
	y := tp.out(len(ids), table.Cols, table.Grad != nil)
	for i, id := range ids {
		if id < 0 || int(id) >= table.Rows {
			panic(fmt.Sprintf("autograd: token id %d outside the vocabulary of %d", id, table.Rows))
		}
		copy(y.Row(i), table.Row(int(id)))
	}
	if y.Grad != nil {
		tp.record(func() {
			C := table.Cols
			for i, id := range ids {
				kernels.Axpy(table.Grad[int(id)*C:(int(id)+1)*C], 1, y.Grad[i*C:(i+1)*C])
			}
		})
	}
	return y
}
