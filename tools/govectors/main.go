// Command govectors prints deterministic test vectors that pin the Go standard
// library behaviour thanos-bridge has to reproduce byte for byte:
//
//   - strconv.FormatFloat(v, 'f', 6, 64) (CMMO's floatToString),
//   - encoding/csv Writer output and Reader results (default settings),
//   - encoding/json Marshal of strings, float64 and time.Time, and
//     MarshalIndent(v, "", " ") of manifest-shaped values.
//
// Usage (from this directory):
//
//	go run . > ../../src/package/testdata/go_vectors.json
//
// The output depends only on the Go standard library: all pseudo-random inputs
// come from a fixed-seed splitmix64 generator defined below, so running the
// command twice gives identical bytes.
package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// rng is splitmix64: tiny, well known and independent of math/rand's
// version-specific algorithms.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a value in [0, n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// unit returns a float64 in [0, 1).
func (r *rng) unit() float64 { return float64(r.next()>>11) / (1 << 53) }

// ---------------------------------------------------------------- floats

type floatVector struct {
	Bits string `json:"bits"`
	Out  string `json:"out"`
}

type floatSet struct {
	seen map[uint64]bool
	list []uint64
}

func (s *floatSet) add(vs ...float64) {
	for _, v := range vs {
		b := math.Float64bits(v)
		if !s.seen[b] {
			s.seen[b] = true
			s.list = append(s.list, b)
		}
	}
}

// addAround adds v, its negation and up to k neighbours on each side.
func (s *floatSet) addAround(v float64, k int) {
	s.add(v, -v)
	up, down := v, v
	for i := 0; i < k; i++ {
		up = math.Nextafter(up, math.Inf(1))
		down = math.Nextafter(down, math.Inf(-1))
		s.add(up, down, -up, -down)
	}
}

func floatInputs() []uint64 {
	s := &floatSet{seen: map[uint64]bool{}}
	r := &rng{state: 0x5eed_f10a7}

	// Specials.
	s.add(0, math.Copysign(0, -1), math.NaN(), math.Float64frombits(0xfff8000000000000),
		math.Inf(1), math.Inf(-1))
	// Subnormals and the smallest normal.
	s.addAround(math.SmallestNonzeroFloat64, 2)
	s.addAround(math.Float64frombits(0x000fffffffffffff), 1)
	s.addAround(math.Float64frombits(0x0010000000000000), 1)
	s.addAround(1e-300, 1)
	// Huge values: toFixed switches to exponent notation at 1e21.
	s.addAround(math.MaxFloat64, 1)
	for _, v := range []float64{1e20, 1e21, 1e22, 1e23, 1e100, 1e300, 1 << 53, 1 << 63, 1 << 64,
		123456789012345678901, 999999999999999999999, 4.5e15, 9007199254740993} {
		s.addAround(v, 2)
	}
	// Values that round to (negative) zero.
	for _, v := range []float64{1e-9, 1e-7, 4e-7, 4.999999e-7, 5e-7, 5.000001e-7, 6e-7, 9.999999e-7,
		1e-6, 1.5e-6, 2.5e-6} {
		s.addAround(v, 2)
	}
	// Exact binary ties: x*10^6 has fraction exactly .5 iff 128*x is an odd integer.
	for j := 1; j < 512; j += 2 {
		s.addAround(float64(j)/128, 1)
	}
	for _, k := range []float64{1, 2, 3, 10, 99, 100, 12345, 1e6, 1 << 30, 1 << 40, 1 << 44, 1 << 45} {
		for i := 0; i < 12; i++ {
			j := 2*r.intn(64) + 1
			s.addAround(k+float64(j)/128, 3)
		}
	}
	// Decimal-looking ties (not exact in binary): n.dddddd5.
	for n := 0; n < 40; n++ {
		s.addAround(float64(2*n+1)/2e6, 2)
	}
	for _, whole := range []float64{1, 2, 7, 10, 123, 4096, 1e9, 1e12} {
		for i := 0; i < 6; i++ {
			frac := float64(2*r.intn(1_000_000)+1) / 2e6
			s.addAround(whole+frac, 2)
		}
	}
	// Typical metric values.
	s.add(59410582732800, 4*3600, 0.25*3600, 1.5*60*60, 14400, 3600, 60, 0.5, 0.1, 0.2, 0.3,
		0.1+0.2, 1.0/3, 2.0/3, 123.456, 0.001234, 3.14159265358979)
	for i := 0; i < 300; i++ {
		// Sum of 60 random CPU gauges (cores), times the 60 s step.
		sum := 0.0
		for m := 0; m < 60; m++ {
			sum += r.unit() * 4
		}
		s.add(sum*60, sum/60)
		// Sum of 60 memory gauges (bytes), times 60.
		msum := 0.0
		for m := 0; m < 60; m++ {
			msum += float64(r.intn(64 << 30))
		}
		s.add(msum * 60)
		// max × (60 × n).
		n := 1 + r.intn(60)
		mx := r.unit() * 16
		s.add(mx * (float64(60) * float64(n)))
		// Rates with three decimals, as kube-state-metrics often reports.
		s.add(float64(r.intn(100_000))/1000*60, -float64(r.intn(100_000))/1000)
	}
	// Random near-ties: k + j/128 and its neighbours.
	for i := 0; i < 1500; i++ {
		k := float64(r.intn(1 << 24))
		j := 2*r.intn(64) + 1
		v := k + float64(j)/128
		for d := r.intn(4); d > 0; d-- {
			if r.intn(2) == 0 {
				v = math.Nextafter(v, math.Inf(1))
			} else {
				v = math.Nextafter(v, math.Inf(-1))
			}
		}
		if r.intn(4) == 0 {
			v = -v
		}
		s.add(v)
	}
	// Random doubles by bit pattern, binary exponents covering ~1e-12 .. 1e20.
	for i := 0; i < 10000; i++ {
		exp := uint64(1023 - 40 + r.intn(107))
		bits := exp<<52 | r.next()&0x000fffffffffffff
		if r.intn(5) == 0 {
			bits |= 1 << 63
		}
		s.add(math.Float64frombits(bits))
	}
	// Random decimal-looking doubles: an integer of 1..15 digits scaled by 10^e.
	for i := 0; i < 10000; i++ {
		digits := 1 + r.intn(15)
		n := float64(r.next() % uint64(math.Pow10(digits)))
		e := -12 - digits + r.intn(33)
		var v float64
		if e < 0 {
			v = n / math.Pow10(-e)
		} else {
			v = n * math.Pow10(e)
		}
		if r.intn(5) == 0 {
			v = -v
		}
		s.add(v)
	}
	return s.list
}

func floatVectors(inputs []uint64) []floatVector {
	out := make([]floatVector, 0, len(inputs))
	for _, b := range inputs {
		v := math.Float64frombits(b)
		out = append(out, floatVector{
			Bits: fmt.Sprintf("%016x", b),
			Out:  strconv.FormatFloat(v, 'f', 6, 64),
		})
	}
	return out
}

// ---------------------------------------------------------------- csv

type csvVector struct {
	Record []string   `json:"record"`
	Out    string     `json:"out"`
	Read   [][]string `json:"read"`
}

type csvDecodeVector struct {
	In      string     `json:"in"`
	Records [][]string `json:"records"`
	Error   string     `json:"error,omitempty"`
}

// readAll reads with Go's default csv.Reader and keeps the records that were
// read before the first error.
func readAll(in string) ([][]string, error) {
	rd := csv.NewReader(strings.NewReader(in))
	records := [][]string{}
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return records, nil
		}
		if err != nil {
			return records, err
		}
		records = append(records, rec)
	}
}

func csvVectors() []csvVector {
	hand := [][]string{
		{""}, {"", ""}, {"", "", ""}, {"a"}, {"a", "", "b"}, {"", "x"}, {"x", ""},
		{"a,b"}, {","}, {",", ","}, {"a\"b"}, {"\""}, {"\"\""}, {"\"a\""}, {"a\""},
		{"a\rb"}, {"a\nb"}, {"a\r\nb"}, {"\r"}, {"\n"}, {"\r\n"}, {"\n\r"}, {"a\r"}, {"\ra"},
		{"a\n"}, {"a\r\n"}, {"a\r\r\n"}, {"\r\r"}, {"x", "a\r"}, {"a\r", "x"},
		{" a"}, {"a "}, {" "}, {"\ta"}, {"\t"}, {"\va"}, {"\fa"}, {"\u0085a"}, {"\u00a0a"},
		{"\u1680a"}, {"\u2000a"}, {"\u2003a"}, {"\u200aa"}, {"\u2028a"}, {"\u2029a"},
		{"\u202fa"}, {"\u205fa"}, {"\u3000a"}, {"\u3000"}, {"a\u3000"}, {"x", " y"},
		{"\u180ea"}, {"\u200ba"}, {"\ufeffa"}, {"\u0000a"}, {"\u00a1a"},
		{`\.`}, {`\.x`}, {`x\.`}, {`\`}, {`.`}, {`\.`, `\.`}, {`"\."`},
		{"é", "ü,ö", "日本語", "😀", "a😀,b"},
		{"label_app:etcd-operator|label_pod_template_hash:576bc857f8"},
		{"label_a:x,y|label_b:\"q\""},
		{"2020-11-06 18:00:00 +0000 UTC", "2020-11-06 18:59:59 +0000 UTC", "pod-1", "ns",
			"node-1", "i-0123", "14400.000000", "", "0.007812", "label_app:a|label_b:b"},
	}
	r := &rng{state: 0xc5f_5eed}
	alphabet := []string{"a", "b", "Z", "0", ",", ",", "\"", "\"", "\r", "\n", "\r\n", " ", "\t",
		"\u00a0", "\u2003", "\u3000", "\u0085", "\u2028", "\u200b", "\ufeff", "\\", ".", `\.`,
		"é", "😀", "|", ":", "\x00", "\x7f"}
	records := append([][]string{}, hand...)
	for i := 0; i < 2000; i++ {
		nf := 1 + r.intn(6)
		rec := make([]string, nf)
		for f := range rec {
			var sb strings.Builder
			for n := r.intn(9); n > 0; n-- {
				sb.WriteString(alphabet[r.intn(len(alphabet))])
			}
			rec[f] = sb.String()
		}
		records = append(records, rec)
	}
	out := make([]csvVector, 0, len(records))
	for _, rec := range records {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		if err := w.Write(rec); err != nil {
			panic(err)
		}
		w.Flush()
		if err := w.Error(); err != nil {
			panic(err)
		}
		read, err := readAll(buf.String())
		if err != nil {
			panic(fmt.Sprintf("reading back %q: %v", buf.String(), err))
		}
		out = append(out, csvVector{Record: rec, Out: buf.String(), Read: read})
	}
	return out
}

func csvDecodeVectors() []csvDecodeVector {
	hand := []string{
		"", "\n", "\n\n", "\r\n", "\r", "\r\r", "a", "a\n", "a\r", "a\r\n", "a\r\r\n", "a\rb\n",
		"a,b\nc,d\n", "a,b\r\nc,d\r\n", "a,b\nc,d", "a,b\n\nc,d\n", "a,b\nc\n", "a\nb,c\n",
		"\"a\"", "\"a\"\n", "\"a\"\r\n", "\"a\"\r", "\"a,b\",c\n", "\"a\"\"b\"\n", "\"\"\n",
		"\"\",\"\"\n", ",\n", ",,\n", "\"a\nb\"\n", "\"a\r\nb\"\n", "\"a\rb\"\n", "\"a\r\"\n",
		"\"a\n", "\"a", "\"", "a\"b\n", "a,b\"\n", "\"a\"b\n", "\"a\" \n", "x\n\"a\"b\n",
		"\"a\nb\nc\"x\n", "\"a\nb\n", "a,\"b\nc\"\nd,e\n", "a,\"b\nc\"\nd\n", " \"a\"\n",
		"\ufeffa,b\n", "é,😀\n", "\"é😀\"\n", "a,\"\"\"\"\n", "a,b,\n", "\"\n\"\n",
		"a\n\r\nb\n", "a\n\r\n\r\nb", "\"\r\n\"\r\n", "\"a\"\"\n", "a\"\n", "\"a\",\n",
		"\"a\n\r", "\"a\nb", "\"a\n\n", "\"a\n\r\n", "é\"\n", "\"é\"x\n", "a,\"é\nb\"c\n",
		"😀,a\"\n", "a,b\n\"c\nd\",\"e\"f\n", "x\n\"\"\"\n",
	}
	r := &rng{state: 0xdec0de}
	alphabet := []string{"a", "b", ",", ",", "\"", "\"", "\"", "\r", "\n", "\n", " ", "é"}
	inputs := append([]string{}, hand...)
	for i := 0; i < 1500; i++ {
		var sb strings.Builder
		for n := r.intn(14); n > 0; n-- {
			sb.WriteString(alphabet[r.intn(len(alphabet))])
		}
		inputs = append(inputs, sb.String())
	}
	out := make([]csvDecodeVector, 0, len(inputs))
	for _, in := range inputs {
		records, err := readAll(in)
		v := csvDecodeVector{In: in, Records: records}
		if err != nil {
			v.Error = err.Error()
		}
		out = append(out, v)
	}
	return out
}

// ---------------------------------------------------------------- json

type jsonStringVector struct {
	S   string `json:"s"`
	Out string `json:"out"`
}

type jsonNumberVector struct {
	Bits string `json:"bits"`
	Out  string `json:"out"`
}

type jsonTimeVector struct {
	UnixSeconds int64  `json:"unix_seconds"`
	Nanos       int    `json:"nanos"`
	Out         string `json:"out"`
}

type jsonValueVector struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
	Out   string          `json:"out"`
}

// Manifest shape of contract §4.4 with thanos-bridge's cr_status (BRIDGE.md §2).
type crSource struct {
	SourceType    string `json:"source_type"`
	BridgeVersion string `json:"bridge_version"`
}

type crUpload struct {
	Upload bool `json:"upload"`
}

type crStatus struct {
	ClusterID string   `json:"clusterID"`
	Source    crSource `json:"source"`
	Upload    crUpload `json:"upload"`
}

type manifest struct {
	UUID         string    `json:"uuid"`
	ClusterID    string    `json:"cluster_id"`
	Version      string    `json:"version"`
	Date         time.Time `json:"date"`
	Files        []string  `json:"files"`
	ROSFiles     []string  `json:"resource_optimization_files"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	CRStatus     crStatus  `json:"cr_status"`
	Certified    bool      `json:"certified"`
	DailyReports bool      `json:"daily_reports"`
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func jsonStringVectors() []jsonStringVector {
	inputs := []string{"", "a", "hello world", `"`, `\`, "/", "<", ">", "&", "<a href=\"x\">&amp;</a>",
		"\u2028", "\u2029", "a\u2028b\u2029c", "\u007f", "\u0080", "\u00e9", "\ufffd", "\ufeff",
		"😀", "日本語", "\t\n\r\b\f", "'", "`", "\u200b", "\u0085"}
	for c := 0; c < 0x80; c++ {
		inputs = append(inputs, string(rune(c)), "x"+string(rune(c))+"y")
	}
	r := &rng{state: 0x150e}
	alphabet := []string{"a", "Z", "\"", "\\", "/", "<", ">", "&", "\u2028", "\u2029", "\x00", "\x01",
		"\x08", "\x0c", "\n", "\r", "\t", "\x1f", "\x7f", "é", "😀", " "}
	for i := 0; i < 400; i++ {
		var sb strings.Builder
		for n := r.intn(10); n > 0; n-- {
			sb.WriteString(alphabet[r.intn(len(alphabet))])
		}
		inputs = append(inputs, sb.String())
	}
	seen := map[string]bool{}
	out := []jsonStringVector{}
	for _, s := range inputs {
		if seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, jsonStringVector{S: s, Out: string(mustMarshal(s))})
	}
	return out
}

func jsonNumberVectors(floats []uint64) []jsonNumberVector {
	out := []jsonNumberVector{}
	add := func(b uint64) {
		v := math.Float64frombits(b)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		out = append(out, jsonNumberVector{Bits: fmt.Sprintf("%016x", b), Out: string(mustMarshal(v))})
	}
	for _, v := range []float64{0, math.Copysign(0, -1), 1, -1, 42, 1 << 53, -(1 << 53), 1e20, 1e21,
		1e-6, 1e-7, 9.999999999999999e-7, 1.5e-7, 1e-100, 5e-324, math.MaxFloat64, 0.1, 123456789} {
		add(math.Float64bits(v))
	}
	for i, b := range floats {
		if i%8 == 0 {
			add(b)
		}
	}
	return out
}

func jsonTimeVectors() []jsonTimeVector {
	times := []time.Time{
		{},
		time.Date(2021, 7, 20, 15, 0, 0, 0, time.UTC),
		time.Date(2021, 7, 20, 18, 1, 21, 705677301, time.UTC),
		time.Date(2023, 8, 21, 18, 3, 24, 327297688, time.UTC),
		time.Date(2026, 11, 1, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 11, 1, 0, 0, 0, 100_000_000, time.UTC),
		time.Date(2026, 11, 1, 0, 0, 0, 120_000_000, time.UTC),
		time.Date(2026, 11, 1, 0, 0, 0, 123_000_000, time.UTC),
		time.Date(2026, 11, 1, 0, 0, 0, 1_000_000, time.UTC),
		time.Date(2026, 11, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2026, 11, 1, 0, 0, 0, 500_000_000, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(2000, 2, 29, 12, 34, 56, 789_000_000, time.UTC),
	}
	out := make([]jsonTimeVector, 0, len(times))
	for _, t := range times {
		out = append(out, jsonTimeVector{
			UnixSeconds: t.Unix(),
			Nanos:       t.Nanosecond(),
			Out:         string(mustMarshal(t)),
		})
	}
	return out
}

func jsonValueVectors() []jsonValueVector {
	const id = "2c5bf36c-7572-4156-b102-43f898e1430f"
	const cluster = "16b9a60d-0774-4102-9028-bd28d6c38ac2"
	base := manifest{
		UUID:      id,
		ClusterID: cluster,
		Version:   "78eabeb962648926f98b4cc239a6f59541f001cd",
		Date:      time.Date(2023, 8, 21, 18, 3, 24, 327_000_000, time.UTC),
		Files: []string{
			id + "-cm-openshift-pod-usage-202308.3.csv",
			id + "-cm-openshift-node-usage-202308.1.csv",
		},
		ROSFiles: []string{id + "-ros-openshift-container-202308.6.csv"},
		Start:    time.Date(2023, 8, 21, 0, 0, 0, 0, time.UTC),
		End:      time.Date(2023, 8, 21, 17, 59, 59, 0, time.UTC),
		CRStatus: crStatus{
			ClusterID: cluster,
			Source:    crSource{SourceType: "thanos_bridge", BridgeVersion: "0.1.0"},
			Upload:    crUpload{Upload: true},
		},
		Certified:    false,
		DailyReports: true,
	}
	nilFiles := base
	nilFiles.Files = nil
	nilFiles.ROSFiles = nil
	nilFiles.Date = time.Date(2026, 11, 2, 0, 10, 0, 0, time.UTC)
	emptyFiles := base
	emptyFiles.Files = []string{}
	emptyFiles.ROSFiles = []string{}
	emptyFiles.Certified = true
	zeroRange := base
	zeroRange.Start = time.Time{}
	zeroRange.End = time.Time{}
	zeroRange.Date = time.Date(2026, 11, 2, 0, 10, 0, 705_000_000, time.UTC)
	escaped := base
	escaped.ClusterID = "a<b>&c\"d\\e\u2028f\tg"
	escaped.Version = "v1.0.0+<build>"
	escaped.CRStatus.Source.BridgeVersion = "1.2.3-rc.1&x"

	type nested struct {
		Empty    struct{}          `json:"empty"`
		EmptyMap map[string]int    `json:"empty_map"`
		NilMap   map[string]int    `json:"nil_map"`
		Map      map[string]string `json:"map"`
		Matrix   [][]int           `json:"matrix"`
		Ints     []int             `json:"ints"`
		Flags    []bool            `json:"flags"`
		Deep     [][][]string      `json:"deep"`
	}
	misc := nested{
		EmptyMap: map[string]int{},
		Map:      map[string]string{"b": "2", "a": "1", "c<": ">"},
		Matrix:   [][]int{{}, {1}, {-2, 3}},
		Ints:     []int{0, -1, 9007199254740991, -9007199254740991},
		Flags:    []bool{true, false},
		Deep:     [][][]string{{{}}, {{"x"}}},
	}

	cases := []struct {
		name  string
		value any
	}{
		{"manifest", base},
		{"manifest_nil_files", nilFiles},
		{"manifest_empty_files", emptyFiles},
		{"manifest_zero_start_end", zeroRange},
		{"manifest_escaped_strings", escaped},
		{"nested_values", misc},
		{"empty_array", []string{}},
		{"nil_array", []string(nil)},
		{"string", "x<y"},
		{"number", 42},
		{"bool", true},
	}
	out := make([]jsonValueVector, 0, len(cases))
	for _, c := range cases {
		indented, err := json.MarshalIndent(c.value, "", " ")
		if err != nil {
			panic(err)
		}
		out = append(out, jsonValueVector{Name: c.name, Value: mustMarshal(c.value), Out: string(indented)})
	}
	return out
}

// ---------------------------------------------------------------- output

// section writes `"name": [` followed by one compact JSON element per line.
func section[T any](w *bufio.Writer, name string, items []T, last bool) {
	fmt.Fprintf(w, "%q: [\n", name)
	for i, it := range items {
		w.Write(mustMarshal(it))
		if i < len(items)-1 {
			w.WriteString(",\n")
		} else {
			w.WriteString("\n")
		}
	}
	if last {
		w.WriteString("]\n")
	} else {
		w.WriteString("],\n")
	}
}

func main() {
	floats := floatInputs()
	w := bufio.NewWriter(os.Stdout)
	w.WriteString("{\n")
	fmt.Fprintf(w, "%q: %q,\n", "generator", "tools/govectors (go run . > ../../src/package/testdata/go_vectors.json)")
	section(w, "floats", floatVectors(floats), false)
	section(w, "csv", csvVectors(), false)
	section(w, "csv_decode", csvDecodeVectors(), false)
	section(w, "json_strings", jsonStringVectors(), false)
	section(w, "json_numbers", jsonNumberVectors(floats), false)
	section(w, "json_times", jsonTimeVectors(), false)
	section(w, "json_values", jsonValueVectors(), true)
	w.WriteString("}\n")
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
