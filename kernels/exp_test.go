package kernels

var experimental []*microKernel
