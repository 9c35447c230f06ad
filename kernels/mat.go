package kernels

import "fmt"

// Op says whether an operand is used as stored (NoTrans) or transposed (Trans).
type Op bool

const (
	NoTrans Op = false
	Trans   Op = true
)

func (o Op) String() string {
	if o {
		return "T"
	}
	return "N"
}

// Mat is a row-major view of float32 values: element (i, j) is Data[i*Stride+j].
// A Mat does not own its data; views of one buffer may share it.
type Mat struct {
	Data       []float32
	Rows, Cols int
	Stride     int
}

// NewMat allocates a zeroed rows×cols matrix with Stride == cols.
func NewMat(rows, cols int) Mat {
	return Mat{Data: make([]float32, rows*cols), Rows: rows, Cols: cols, Stride: cols}
}

// MatOf views data as a rows×cols matrix with Stride == cols.
func MatOf(data []float32, rows, cols int) Mat {
	m := Mat{Data: data, Rows: rows, Cols: cols, Stride: cols}
	m.check("MatOf")
	return m
}

// At returns element (i, j).
func (m Mat) At(i, j int) float32 { return m.Data[i*m.Stride+j] }

// Row returns row i (Cols elements).
func (m Mat) Row(i int) []float32 { return m.Data[i*m.Stride : i*m.Stride+m.Cols] }

// Slice returns the view of rows [i0, i1) and columns [j0, j1).
func (m Mat) Slice(i0, i1, j0, j1 int) Mat {
	if i0 < 0 || i1 < i0 || i1 > m.Rows || j0 < 0 || j1 < j0 || j1 > m.Cols {
		panic(fmt.Sprintf("kernels: Slice [%d:%d, %d:%d] of %d×%d", i0, i1, j0, j1, m.Rows, m.Cols))
	}
	if i1 == i0 || j1 == j0 {
		return Mat{Rows: i1 - i0, Cols: j1 - j0, Stride: m.Stride}
	}
	off := i0*m.Stride + j0
	end := (i1-1)*m.Stride + j1
	return Mat{Data: m.Data[off:end:end], Rows: i1 - i0, Cols: j1 - j0, Stride: m.Stride}
}

func (m Mat) check(what string) {
	if m.Rows < 0 || m.Cols < 0 || (m.Rows > 1 && m.Stride < m.Cols) {
		panic(fmt.Sprintf("kernels: %s: bad shape %d×%d stride %d", what, m.Rows, m.Cols, m.Stride))
	}
	if m.Rows > 0 && m.Cols > 0 && len(m.Data) < (m.Rows-1)*m.Stride+m.Cols {
		panic(fmt.Sprintf("kernels: %s: %d×%d stride %d needs %d elements, have %d",
			what, m.Rows, m.Cols, m.Stride, (m.Rows-1)*m.Stride+m.Cols, len(m.Data)))
	}
}

// dims returns the shape of op(m).
func (m Mat) dims(op Op) (rows, cols int) {
	if op == Trans {
		return m.Cols, m.Rows
	}
	return m.Rows, m.Cols
}
