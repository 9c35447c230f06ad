package main

import "fmt"

// AVX-VNNI (Intel from Alder Lake on, AMD from Zen 5 on, CPUs without
// AVX-512's EVEX form among them) has VPDPBUSD on ymm with a VEX prefix.
// Go's assembler knows only the EVEX form (AVX512_VNNI), which faults on
// those CPUs, so the kernels carry the VEX form as BYTE directives
// (TestVEX checks them against GNU as). Few machines here have AVX-VNNI
// (an AMD EPYC, Zen 5, ran them bit for bit against the Go reference):
// each kernel is also emitted with VPDPBUSD replaced by an exact AVX2
// equivalent (dpbusd's emu), which the tests run bit for bit against the
// Go reference on any AVX2 CPU, and TestVNNIEmu checks that the two
// kernels' texts differ in those instructions alone.

// vexDPBUSD encodes VPDPBUSD ymm(dst), ymm(src1), ymm(src2) (VEX.256.66.0F38.W0
// 50 /r): each int32 lane of dst plus the four products of src1's unsigned
// bytes and src2's signed bytes in that lane.
func vexDPBUSD(dst, src1, src2 int) []byte {
	p := vex3(dst>>3, 0, src2>>3, src1, 1)
	p[2] |= 1 << 2 // L: 256-bit
	return append(p, 0x50, byte(0b11<<6|(dst&7)<<3|src2&7))
}

// vexDPBUSDMem encodes VPDPBUSD ymm(dst), ymm(src1), [base + disp] (base
// not SP or R12, which need a SIB byte).
func vexDPBUSDMem(dst, src1, base, disp int) []byte {
	p := vex3(dst>>3, 0, base>>3, src1, 1)
	p[2] |= 1 << 2
	mod := 0b10
	switch {
	case disp == 0 && base&7 != 5:
		mod = 0
	case disp >= -128 && disp <= 127:
		mod = 0b01
	}
	out := append(p, 0x50, byte(mod<<6|(dst&7)<<3|base&7))
	switch mod {
	case 0b01:
		out = append(out, byte(int8(disp)))
	case 0b10:
		out = append(out, byte(disp), byte(disp>>8), byte(disp>>16), byte(disp>>24))
	}
	return out
}

// emuTag ends each line of an emulated VPDPBUSD (see TestVNNIEmu).
const emuTag = " (emulated)"

// dpbusd emits Y(acc) += VPDPBUSD(Y(u) unsigned, Y(s) signed): AVX-VNNI's
// instruction, or for emu the same integers by AVX2 (dpbusdSpill: one
// temporary Y(t) and 32 bytes at spill; u and s kept).
func dpbusd(a *asm, emu bool, acc, u, s, t int, spill string) {
	if emu {
		dpbusdSpill(a, acc, u, s, t, spill)
		return
	}
	a.l("%s", bytesLine(vexDPBUSD(acc, u, s), fmt.Sprintf("VPDPBUSD Y%d, Y%d, Y%d", s, u, acc)))
}

// dpbusdMem is dpbusd with s the 32 bytes at disp(R10); its emulation
// loads them into Y(s) and clobbers Y(s), Y(t1) and Y(t2) (dpbusdEmu).
func dpbusdMem(a *asm, emu bool, acc, u, disp, s, t1, t2 int) {
	ins := fmt.Sprintf("VPDPBUSD %d(R10), Y%d, Y%d", disp, u, acc)
	if !emu {
		a.l("%s", bytesLine(vexDPBUSDMem(acc, u, r10, disp), ins))
		return
	}
	a.l("VMOVDQU %d(R10), Y%d // %s%s", disp, s, ins, emuTag)
	dpbusdEmu(a, ins, acc, u, s, t1, t2)
}

// dpbusdEmu emits the emulation, each line tagged with ins: the words'
// even and odd bytes apart, zero-extended (u) and sign-extended (s), each
// pair of products by VPMADDWD (no lane saturates or overflows: |u·s| ≤
// 255·128), the two sums added to acc.
func dpbusdEmu(a *asm, ins string, acc, u, s, t1, t2 int) {
	e := func(format string, args ...any) { a.l("%s // %s%s", fmt.Sprintf(format, args...), ins, emuTag) }
	e("VPSRLW $8, Y%d, Y%d", u, t1) // u's odd bytes
	e("VPSRAW $8, Y%d, Y%d", s, t2) // s's odd bytes
	e("VPMADDWD Y%d, Y%d, Y%d", t2, t1, t1)
	e("VPADDD Y%d, Y%d, Y%d", t1, acc, acc)
	e("VPSLLW $8, Y%d, Y%d", u, t1) // u's even bytes
	e("VPSRLW $8, Y%d, Y%d", t1, t1)
	e("VPSLLW $8, Y%d, Y%d", s, s) // s's even bytes
	e("VPSRAW $8, Y%d, Y%d", s, s)
	e("VPMADDWD Y%d, Y%d, Y%d", s, t1, t1)
	e("VPADDD Y%d, Y%d, Y%d", t1, acc, acc)
}

// dpbusdSpill is dpbusdEmu's arithmetic with one temporary (Y(t)) and 32
// bytes of memory (spill) where dpbusdEmu takes two and clobbers s: acc's
// own register holds u's halves while acc waits in spill. u and s are kept.
func dpbusdSpill(a *asm, acc, u, s, t int, spill string) {
	ins := fmt.Sprintf("VPDPBUSD Y%d, Y%d, Y%d", s, u, acc)
	e := func(format string, args ...any) { a.l("%s // %s%s", fmt.Sprintf(format, args...), ins, emuTag) }
	e("VMOVDQU Y%d, %s", acc, spill)
	e("VPSRLW $8, Y%d, Y%d", u, acc) // u's odd bytes
	e("VPSRAW $8, Y%d, Y%d", s, t)   // s's odd bytes
	e("VPMADDWD Y%d, Y%d, Y%d", t, acc, acc)
	e("VPADDD %s, Y%d, Y%d", spill, acc, acc)
	e("VMOVDQU Y%d, %s", acc, spill)
	e("VPSLLW $8, Y%d, Y%d", u, acc) // u's even bytes
	e("VPSRLW $8, Y%d, Y%d", acc, acc)
	e("VPSLLW $8, Y%d, Y%d", s, t) // s's even bytes
	e("VPSRAW $8, Y%d, Y%d", t, t)
	e("VPMADDWD Y%d, Y%d, Y%d", t, acc, acc)
	e("VPADDD %s, Y%d, Y%d", spill, acc, acc)
}
