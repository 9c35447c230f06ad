package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestEVEX: the hand-encoded VDPBF16PS and VCVTNE2PS2BF16 are what GNU as (binutils 2.40)
// assembles for the same operands (objdump -d of its output), across the
// register ranges (R, R', V') and the displacement forms (none, disp8·4,
// disp32, negative).
func TestEVEX(t *testing.T) {
	for _, c := range []struct {
		dst, src1, disp int
		want            []byte
	}{
		{0, 24, 0, []byte{0x62, 0xf2, 0x3e, 0x50, 0x52, 0x06}},
		{3, 24, 8, []byte{0x62, 0xf2, 0x3e, 0x50, 0x52, 0x5e, 0x02}},
		{23, 25, 44, []byte{0x62, 0xe2, 0x36, 0x50, 0x52, 0x7e, 0x0b}},
		{9, 25, 512, []byte{0x62, 0x72, 0x36, 0x50, 0x52, 0x8e, 0x00, 0x02, 0x00, 0x00}},
		{17, 24, 1148, []byte{0x62, 0xe2, 0x3e, 0x50, 0x52, 0x8e, 0x7c, 0x04, 0x00, 0x00}},
		{8, 7, 508, []byte{0x62, 0x72, 0x46, 0x58, 0x52, 0x46, 0x7f}},
		{31, 16, -4, []byte{0x62, 0x62, 0x7e, 0x50, 0x52, 0x7e, 0xff}},
	} {
		if got := evexDPBF16PS(c.dst, c.src1, c.disp); !bytes.Equal(got, c.want) {
			t.Errorf("vdpbf16ps zmm%d, zmm%d, [rsi%+d]{1to16}: % x, want % x", c.dst, c.src1, c.disp, got, c.want)
		}
	}
	for _, c := range []struct {
		dst, src1, src2 int
		want            []byte
	}{
		{0, 24, 25, []byte{0x62, 0x92, 0x3e, 0x40, 0x52, 0xc1}},
		{23, 25, 26, []byte{0x62, 0x82, 0x36, 0x40, 0x52, 0xfa}},
		{5, 24, 27, []byte{0x62, 0x92, 0x3e, 0x40, 0x52, 0xeb}},
		{17, 7, 9, []byte{0x62, 0xc2, 0x46, 0x48, 0x52, 0xc9}},
		{8, 16, 3, []byte{0x62, 0x72, 0x7e, 0x40, 0x52, 0xc3}},
	} {
		if got := evexDPBF16PSReg(c.dst, c.src1, c.src2); !bytes.Equal(got, c.want) {
			t.Errorf("vdpbf16ps zmm%d, zmm%d, zmm%d: % x, want % x", c.dst, c.src1, c.src2, got, c.want)
		}
	}
	for _, c := range []struct {
		dst, src1, src2 int
		want            []byte
	}{
		{0, 0, 1, []byte{0x62, 0xf2, 0x7f, 0x48, 0x72, 0xc1}},
		{3, 16, 17, []byte{0x62, 0xb2, 0x7f, 0x40, 0x72, 0xd9}},
		{30, 25, 9, []byte{0x62, 0x42, 0x37, 0x40, 0x72, 0xf1}},
		{17, 12, 2, []byte{0x62, 0xe2, 0x1f, 0x48, 0x72, 0xca}},
		{8, 7, 31, []byte{0x62, 0x12, 0x47, 0x48, 0x72, 0xc7}},
	} {
		if got := evexCVTNE2PS2BF16(c.dst, c.src1, c.src2); !bytes.Equal(got, c.want) {
			t.Errorf("vcvtne2ps2bf16 zmm%d, zmm%d, zmm%d: % x, want % x", c.dst, c.src1, c.src2, got, c.want)
		}
	}
}

// TestAMX: the hand-encoded AMX instructions are what GNU as (binutils
// 2.40) assembles for the same operands.
func TestAMX(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"ldtilecfg [rax]", ldtilecfg(rAX), []byte{0xc4, 0xe2, 0x78, 0x49, 0x00}},
		{"ldtilecfg [r9]", ldtilecfg(r9), []byte{0xc4, 0xc2, 0x78, 0x49, 0x01}},
		{"tilerelease", tileRelease(), []byte{0xc4, 0xe2, 0x78, 0x49, 0xc0}},
		{"tilezero tmm0", tileZero(0), []byte{0xc4, 0xe2, 0x7b, 0x49, 0xc0}},
		{"tilezero tmm3", tileZero(3), []byte{0xc4, 0xe2, 0x7b, 0x49, 0xd8}},
		{"tileloadd tmm4, [rsi+r10*1]", tileLoad(4, rSI, r10, 0), []byte{0xc4, 0xa2, 0x7b, 0x4b, 0x24, 0x16}},
		{"tileloadd tmm5, [rsi+r10*1+1024]", tileLoad(5, rSI, r10, 1024), []byte{0xc4, 0xa2, 0x7b, 0x4b, 0xac, 0x16, 0x00, 0x04, 0x00, 0x00}},
		{"tileloadd tmm6, [rdi+r11*1]", tileLoad(6, rDI, r11, 0), []byte{0xc4, 0xa2, 0x7b, 0x4b, 0x34, 0x1f}},
		{"tileloadd tmm7, [rdi+r11*1+64]", tileLoad(7, rDI, r11, 64), []byte{0xc4, 0xa2, 0x7b, 0x4b, 0x7c, 0x1f, 0x40}},
		{"tdpbf16ps tmm0, tmm4, tmm6", tdpbf16ps(0, 4, 6), []byte{0xc4, 0xe2, 0x4a, 0x5c, 0xc4}},
		{"tdpbf16ps tmm1, tmm4, tmm7", tdpbf16ps(1, 4, 7), []byte{0xc4, 0xe2, 0x42, 0x5c, 0xcc}},
		{"tdpbf16ps tmm2, tmm5, tmm6", tdpbf16ps(2, 5, 6), []byte{0xc4, 0xe2, 0x4a, 0x5c, 0xd5}},
		{"tdpbf16ps tmm3, tmm5, tmm7", tdpbf16ps(3, 5, 7), []byte{0xc4, 0xe2, 0x42, 0x5c, 0xdd}},
		{"tilestored [r9+r8*1], tmm0", tileStore(0, r9, r8, 0), []byte{0xc4, 0x82, 0x7a, 0x4b, 0x04, 0x01}},
		{"tilestored [r9+r8*1+64], tmm1", tileStore(1, r9, r8, 64), []byte{0xc4, 0x82, 0x7a, 0x4b, 0x4c, 0x01, 0x40}},
		{"tilestored [r9+r8*1+2048], tmm2", tileStore(2, r9, r8, 2048), []byte{0xc4, 0x82, 0x7a, 0x4b, 0x94, 0x01, 0x00, 0x08, 0x00, 0x00}},
		{"tilestored [r9+r8*1+2112], tmm3", tileStore(3, r9, r8, 2112), []byte{0xc4, 0x82, 0x7a, 0x4b, 0x9c, 0x01, 0x40, 0x08, 0x00, 0x00}},
		{"tilestored [rdx+r8*1], tmm0", tileStore(0, rDX, r8, 0), []byte{0xc4, 0xa2, 0x7a, 0x4b, 0x04, 0x02}},
		{"tilestored [rdx+r8*1+64], tmm1", tileStore(1, rDX, r8, 64), []byte{0xc4, 0xa2, 0x7a, 0x4b, 0x4c, 0x02, 0x40}},
		{"tilestored [r12+r8*1], tmm2", tileStore(2, r12, r8, 0), []byte{0xc4, 0x82, 0x7a, 0x4b, 0x14, 0x04}},
		{"tilestored [r12+r8*1+64], tmm3", tileStore(3, r12, r8, 64), []byte{0xc4, 0x82, 0x7a, 0x4b, 0x5c, 0x04, 0x40}},
		{"tilestored [r9+r11*1], tmm0", tileStore(0, r9, r11, 0), []byte{0xc4, 0x82, 0x7a, 0x4b, 0x04, 0x19}},
		{"tilestored [r9+r11*1+2112], tmm3", tileStore(3, r9, r11, 2112), []byte{0xc4, 0x82, 0x7a, 0x4b, 0x9c, 0x19, 0x40, 0x08, 0x00, 0x00}},
		{"tileloadd tmm5, [rax+r10*1+1024]", tileLoad(5, rAX, r10, 1024), []byte{0xc4, 0xa2, 0x7b, 0x4b, 0xac, 0x10, 0x00, 0x04, 0x00, 0x00}},
		{"tileloadd tmm4, [rax+r10*1]", tileLoad(4, rAX, r10, 0), []byte{0xc4, 0xa2, 0x7b, 0x4b, 0x24, 0x10}},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: % x, want % x", c.name, c.got, c.want)
		}
	}
}

// TestA64: the encoded NEON instructions are what GNU as 2.40
// (aarch64-linux-gnu-as -march=armv8.2-a+dotprod) assembles.
func TestA64(t *testing.T) {
	for _, c := range []struct {
		got  string
		want int
	}{
		{sdot(3, 1, 2), 0x4e829423}, {sdot(31, 17, 8), 0x4e88963f},
		{scvtf4s(5, 6), 0x4e21d8c5}, {scvtf4s(30, 19), 0x4e21da7e},
		{fadd4s(1, 2, 3), 0x4e23d441}, {fadd4s(28, 17, 9), 0x4e29d63c},
		{fmla4s(1, 2, 3), 0x4e23cc41}, {fmla4s(20, 21, 22), 0x4e36ceb4}, {fmla4s(0, 10, 12), 0x4e2ccd40},
		{fmulElem(1, 2, 3, 0), 0x4f839041}, {fmulElem(7, 18, 29, 0), 0x4f9d9247}, {fmulElem(7, 18, 13, 0), 0x4f8d9247},
		{sdotElem(0, 24, 26, 0), 0x4f9ae300}, {sdotElem(1, 25, 26, 1), 0x4fbae321}, {sdotElem(10, 24, 31, 2), 0x4f9feb0a},
		{sdotElem(11, 25, 31, 3), 0x4fbfeb2b}, {sdotElem(5, 9, 17, 3), 0x4fb1e925},
		{fmulElem(28, 24, 26, 0), 0x4f9a931c}, {fmulElem(29, 25, 26, 3), 0x4fba9b3d}, {fmulElem(28, 24, 27, 1), 0x4fbb931c},
		{fmulElem(3, 7, 19, 2), 0x4f9398e3},
		{fabs4s(8, 0), 0x4ea0f808}, {fabs4s(31, 17), 0x4ea0fa3f}, {fmax4s(8, 8, 9), 0x4e29f508}, {fmax4s(20, 3, 29), 0x4e3df474},
		{fmaxv4s(8, 8), 0x6e30f908}, {fmaxv4s(30, 17), 0x6e30fa3e}, {fcvtns4s(16, 0), 0x4e21a810}, {fcvtns4s(23, 7), 0x4e21a8f7},
		{sqxtn4h(16, 16), 0x0e614a10}, {sqxtn28h(16, 17), 0x4e614a30}, {sqxtn8b(16, 16), 0x0e214a10}, {sqxtn216b(17, 19), 0x4e214a71},
		{smax16b(16, 16, 31), 0x4e3f6610}, {addv4s(24, 24), 0x4eb1bb18}, {add4s(24, 16, 17), 0x4eb18618}, {add4s(5, 30, 9), 0x4ea987c5},
		{faddp4s(0, 1, 2), 0x6e22d420}, {faddp4s(17, 9, 30), 0x6e3ed531},
		{fcvtl4s(3, 4), 0x0e217883}, {fcvtl4s(19, 28), 0x0e217b93}, {fcvtl24s(5, 6), 0x4e2178c5}, {fcvtl24s(21, 26), 0x4e217b55},
		{shll4s(1, 2), 0x2e613841}, {shll4s(17, 27), 0x2e613b71}, {shll24s(1, 2), 0x6e613841}, {shll24s(18, 25), 0x6e613b32},
		// -march=armv8.6-a+bf16
		{bfdotElem(0, 24, 27, 0), 0x4f5bf300}, {bfdotElem(1, 25, 27, 1), 0x4f7bf321}, {bfdotElem(2, 26, 27, 2), 0x4f5bfb42},
		{bfdotElem(23, 26, 28, 3), 0x4f7cfb57}, {bfdotElem(12, 24, 28, 0), 0x4f5cf30c}, {bfdotElem(5, 9, 3, 1), 0x4f63f125},
	} {
		var w int
		fmt.Sscanf(c.got, "WORD $0x%x", &w)
		if w != c.want {
			t.Errorf("%s: want 0x%08x", c.got, c.want)
		}
	}
}

// TestVEX: the hand-encoded AVX-VNNI VPDPBUSD is what GNU as (binutils
// 2.40, "{vex} vpdpbusd") assembles for the same operands: register
// forms across the high registers (VEX.R, VEX.B, vvvv) and memory forms
// with no, 8-bit and 32-bit displacements (R13 and BP need one).
func TestVEX(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"ymm7, ymm4, [r10]", vexDPBUSDMem(7, 4, r10, 0), []byte{0xc4, 0xc2, 0x5d, 0x50, 0x3a}},
		{"ymm7, ymm4, [r10+96]", vexDPBUSDMem(7, 4, r10, 96), []byte{0xc4, 0xc2, 0x5d, 0x50, 0x7a, 0x60}},
		{"ymm7, ymm5, [r10+160]", vexDPBUSDMem(7, 5, r10, 160), []byte{0xc4, 0xc2, 0x55, 0x50, 0xba, 0xa0, 0x00, 0x00, 0x00}},
		{"ymm9, ymm4, [rsi+8]", vexDPBUSDMem(9, 4, rSI, 8), []byte{0xc4, 0x62, 0x5d, 0x50, 0x4e, 0x08}},
		{"ymm3, ymm8, [r13]", vexDPBUSDMem(3, 8, r13, 0), []byte{0xc4, 0xc2, 0x3d, 0x50, 0x5d, 0x00}},
		{"ymm3, ymm8, [rbp-4]", vexDPBUSDMem(3, 8, rBP, -4), []byte{0xc4, 0xe2, 0x3d, 0x50, 0x5d, 0xfc}},
		{"ymm0, ymm12, ymm13", vexDPBUSD(0, 12, 13), []byte{0xc4, 0xc2, 0x1d, 0x50, 0xc5}},
		{"ymm5, ymm12, ymm13", vexDPBUSD(5, 12, 13), []byte{0xc4, 0xc2, 0x1d, 0x50, 0xed}},
		{"ymm11, ymm3, ymm9", vexDPBUSD(11, 3, 9), []byte{0xc4, 0x42, 0x65, 0x50, 0xd9}},
		{"ymm2, ymm14, ymm1", vexDPBUSD(2, 14, 1), []byte{0xc4, 0xe2, 0x0d, 0x50, 0xd1}},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("vpdpbusd %s: % x, want % x", c.name, c.got, c.want)
		}
	}
}

// TestVNNIEmu: the AVX-VNNI kernels and their emulated twins (which the
// kernels' tests run) are the same text but for each VPDPBUSD: the real
// one's BYTE line and the twin's tagged lines, read as the instruction
// they stand for, and the names' Emu.
func TestVNNIEmu(t *testing.T) {
	norm := func(src []byte) []string {
		var out []string
		for _, line := range strings.Split(string(src), "\n") {
			if i := strings.Index(line, "// VPDPBUSD "); i >= 0 {
				emu := strings.HasSuffix(line, emuTag)
				if emu == strings.HasPrefix(strings.TrimSpace(line), "BYTE") {
					t.Fatalf("%q: a BYTE line tagged as emulated, or an emulated line not tagged", line)
				}
				line = "\t" + strings.TrimSuffix(line[i+3:], emuTag)
				if emu && len(out) > 0 && out[len(out)-1] == line {
					continue // the same instruction's next line
				}
			}
			out = append(out, strings.ReplaceAll(line, "AVXVNNIEmu", "AVXVNNI"))
		}
		return out
	}
	// The GEMM file holds both kernels, then the quantizer.
	g := string(int8GemmAVXVNNI())
	i := strings.Index(g, "// func gemmInt8AVXVNNI(")
	j := strings.Index(g, "// func gemmInt8AVXVNNIEmu(")
	k := strings.Index(g, "// func quantInt8AVX2(")
	if i < 0 || j < i || k < j {
		t.Fatal("gemm: the kernels not found in order")
	}
	for _, c := range []struct {
		name      string
		real, emu string
		dpbusd    int // VPDPBUSD instructions
	}{
		{"dot", string(int8AVXVNNI()), string(int8AVXVNNIEmu()), (2 + 1) * (1 + 1 + 2)}, // 2 rows a step, then 1; Q8_0, Q4_0 one unit, NF4 two
		{"gemm", g[i:j], g[j:k], 4 * 8 * 6},                                             // 4 groups × 8 steps × 6 rows
	} {
		if r, e := norm([]byte(c.real)), norm([]byte(c.emu)); strings.Join(r, "\n") != strings.Join(e, "\n") {
			t.Errorf("%s: the kernels differ beyond VPDPBUSD", c.name)
		}
		n := 0
		for _, line := range strings.Split(c.real, "\n") {
			if strings.Contains(line, "BYTE") && strings.Contains(line, "// VPDPBUSD ") {
				n++
			}
		}
		if n != c.dpbusd {
			t.Errorf("%s: %d VEX VPDPBUSD, want %d", c.name, n, c.dpbusd)
		}
	}
}

// TestVEXDisassembly: every VEX VPDPBUSD the AVX-VNNI kernels carry as
// bytes disassembles (GNU objdump) to the instruction its comment names:
// all of them, not only TestVEX's sample of operands.
func TestVEXDisassembly(t *testing.T) {
	objdump, err := exec.LookPath("objdump")
	if err != nil {
		t.Skip("objdump (GNU binutils) not installed: the VEX bytes are checked by TestVEX alone")
	}
	byteRe := regexp.MustCompile(`BYTE \$0x([0-9a-f]{2})`)
	memRe := regexp.MustCompile(`^(-?\d+)\((R\d+|[A-Z]{2})\)$`)
	att := func(op string) string { // Go's operand as objdump prints it
		if strings.HasPrefix(op, "Y") {
			return "%ymm" + op[1:]
		}
		m := memRe.FindStringSubmatch(op)
		if m == nil {
			t.Fatalf("operand %q", op)
		}
		d, _ := strconv.Atoi(m[1])
		base := "(%" + strings.ToLower(m[2]) + ")"
		if d == 0 {
			return base
		}
		return fmt.Sprintf("0x%x%s", d, base)
	}
	var blob []byte
	var want []string
	seen := map[string]bool{}
	for _, src := range [][]byte{int8AVXVNNI(), int8GemmAVXVNNI()} {
		for _, line := range strings.Split(string(src), "\n") {
			i := strings.Index(line, "// VPDPBUSD ")
			if i < 0 || !strings.Contains(line, "BYTE") || seen[line] {
				continue
			}
			seen[line] = true
			for _, m := range byteRe.FindAllStringSubmatch(line[:i], -1) {
				v, _ := strconv.ParseUint(m[1], 16, 8)
				blob = append(blob, byte(v))
			}
			ops := strings.Split(strings.TrimPrefix(line[i:], "// VPDPBUSD "), ", ")
			for k := range ops {
				ops[k] = att(strings.TrimSpace(ops[k]))
			}
			want = append(want, "{vex} vpdpbusd "+strings.Join(ops, ","))
		}
	}
	if len(want) == 0 {
		t.Fatal("no VPDPBUSD found")
	}
	f := filepath.Join(t.TempDir(), "vex.bin")
	if err := os.WriteFile(f, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(objdump, "-D", "-b", "binary", "-m", "i386:x86-64", f).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v: %s", err, out)
	}
	var got []string
	insRe := regexp.MustCompile(`^\s*[0-9a-f]+:\t(?:[0-9a-f]{2} )+\s*\t(.*)$`)
	for _, line := range strings.Split(string(out), "\n") {
		if m := insRe.FindStringSubmatch(line); m != nil {
			got = append(got, strings.Join(strings.Fields(m[1]), " "))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("objdump decoded %d instructions from %d encodings:\n%s", len(got), len(want), out)
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("encoding %d decodes as %q, its comment says %q", k, got[k], want[k])
		}
	}
	t.Logf("%d distinct VPDPBUSD encodings decode as their comments say", len(want))
}
