// Command goparsefloat prints test vectors for strconv.ParseFloat(s, 64), the
// function Prometheus' sample values are meant for: for each input string,
// whether Go accepts it and, if so, the float64 bits it gives.
//
// Usage (from this directory):
//
//	go run . > ../../src/collect/testdata/go_parse_float_vectors.json
//
// The inputs are a hand-written list of edge cases plus strings drawn from a
// fixed-seed splitmix64 generator over a float-literal alphabet, so the output
// is the same on every run.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

type vector struct {
	S    string `json:"s"`
	OK   bool   `json:"ok"`
	Bits string `json:"bits,omitempty"`
}

var state uint64 = 0x5eed_f10a7

func next() uint64 {
	state += 0x9e3779b97f4a7c15
	z := state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func pick(s string) byte { return s[next()%uint64(len(s))] }

func digits(alphabet string, max int) string {
	n := int(next() % uint64(max+1))
	out := make([]byte, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, pick(alphabet))
	}
	return string(out)
}

// literal builds a string that is often, but not always, a float literal.
func literal() string {
	s := ""
	switch next() % 4 {
	case 0:
		s += "-"
	case 1:
		s += "+"
	}
	hex := next()%4 == 0
	alpha := "0123456789"
	if hex {
		s += []string{"0x", "0X", "0x_"}[next()%3]
		alpha = "0123456789abcdefABCDEF"
	}
	if next()%8 == 0 {
		alpha += "_"
	}
	s += digits(alpha, 20)
	if next()%2 == 0 {
		s += "." + digits(alpha, 20)
	}
	if next()%2 == 0 {
		if hex || next()%8 == 0 {
			s += string(pick("pP"))
		} else {
			s += string(pick("eE"))
		}
		switch next() % 3 {
		case 0:
			s += "-"
		case 1:
			s += "+"
		}
		ea := "0123456789"
		if next()%8 == 0 {
			ea += "_"
		}
		s += digits(ea, 4)
	}
	switch next() % 16 {
	case 0:
		s = " " + s
	case 1:
		s += " "
	case 2:
		s += string(pick("x.e_\t\n"))
	}
	return s
}

func main() {
	inputs := []string{
		"", " ", "0", "-0", "+0", "1", "1.5", "-1.5", ".5", "5.", ".", "-.", "+.5e-3",
		"1e+21", "1e21", "1E21", "1e", "1e+", "1e-", "e1", "1e1.5", "00001", "0.000",
		"NaN", "nan", "NAN", "nAn", "+NaN", "-NaN", "+nan", "NaN ", " NaN", "nanx",
		"Inf", "inf", "INF", "+Inf", "-Inf", "+inf", "-inf", "Infinity", "infinity",
		"+Infinity", "-INFINITY", "infin", "infinit", "infinityy", "Infx", "in", "i",
		"0x10", "0x1p4", "0x1P4", "0X1p-2", "0x.8p1", "0x1.8p1", "0x1.p0", "0x.p0", "0xp0",
		"0x", "0x1", "0x1e3", "0x1e3p0", "-0x0p0", "0x1p", "0x1p+", "0x_1p0", "0x1_0p0",
		"0x1__0p0", "0x1_p0", "0x1p1_0", "0x1fffffffffffffp0", "0x1fffffffffffff8p0",
		"0x1.fffffffffffff8p1023", "0x1.fffffffffffff7p1023", "0x1p1024", "0x1p-1074",
		"0x1p-1075", "0x1.0000000000001p-1075", "0x1p-1076", "0x3p-1076", "0x1p-1022",
		"0x0.0000000000001p-1022", "0x123456789abcdef0123p-40", "0x1p99999999",
		"0x1p-99999999", "0x0p99999999",
		"1_000", "1__000", "_1000", "1000_", "1_000.5", "1_.5", "1._5", "0_1", "1e1_0",
		"1e_10", "1_e10", "0b101", "0o17", "1.5e3_", "12_34.56_78e1_2",
		"1e400", "-1e400", "1e-400", "1.7976931348623157e308", "1.7976931348623158e308",
		"1.7976931348623159e308", "2.2250738585072014e-308", "4.9406564584124654e-324",
		"2.4703282292062327e-324", "2.4703282292062328e-324", "1e99999999999", "1e-99999999999",
		"0e99999999999", "9007199254740993", "9007199254740992.5", "0.1", "0.2", "0.3",
		"123456789012345678901234567890", "3.14159265358979323846264338327950288",
		"1,5", "1.5.5", "--1", "+-1", "1-", "0x-1p0", "١", "１", "1\u00a0", "\t1", "1\n",
		"335413248", "1793491200", "6.02214076e23", "-0.000000001",
	}
	for i := 0; i < 4000; i++ {
		inputs = append(inputs, literal())
	}
	seen := map[string]bool{}
	out := []vector{}
	for _, s := range inputs {
		if seen[s] {
			continue
		}
		seen[s] = true
		f, err := strconv.ParseFloat(s, 64)
		v := vector{S: s, OK: err == nil}
		if err == nil {
			v.Bits = fmt.Sprintf("%016x", math.Float64bits(f))
		}
		out = append(out, v)
	}
	fmt.Println("{")
	fmt.Println(`"generator": "tools/goparsefloat (go run . > ../../src/collect/testdata/go_parse_float_vectors.json)",`)
	fmt.Println(`"vectors": [`)
	for i, v := range out {
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		b := strings.TrimSuffix(buf.String(), "\n")
		if i+1 < len(out) {
			fmt.Printf("%s,\n", b)
		} else {
			fmt.Printf("%s\n", b)
		}
	}
	fmt.Println("]}")
}
