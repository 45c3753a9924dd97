// Command loadgen drives a LISAFS server with gVisor's own Go client
// (gvisor.dev/gvisor/pkg/lisafs) and reports latency and throughput of one
// workload as JSON lines, one per workload run:
//
//	loadgen -socket PATH -workload fstat[,walk3,...] [-channels N]
//	        [-iterations N] [-duration D] [-warmup N] [-dir SUBDIR] [-prepare]
//
// {"workload":"fstat","transport":"channels","channels":2,"n":20000,
//
//	"median_ns":13500,"p99_ns":24000,"mean_ns":14100,"ops_per_sec":70000,...}
//
// -channels 0 sends every RPC over the socket; -channels N > 0 calls
// StartChannels with GOMAXPROCS set to N while it runs (the client opens
// clamp(GOMAXPROCS, 2, 4) channels, so 1 behaves like 2).
//
// Every run is bounded twice: it stops after -iterations timed operations or
// after -duration, whichever comes first (warm-up is bounded the same way).
//
// The fixture, relative to the mount root (or to -dir inside it), is made by
// bench/side_by_side.py on the host before the servers start:
//
//	a/b/c     regular file (4 KiB)           fstat, walk3, walkstat, openat_close
//	data      regular file (8 MiB)           pread_4k, pread_1m
//	dir10k/   10,000 empty files             getdents_10k
//	scratch/  empty directory                pwrite_*, mkdir_unlink, create_close_unlink
//
// -prepare creates whatever is missing through the client itself (used for
// servers that are not backed by the host, e.g. the memfs extension).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/lisafs"
	"gvisor.dev/gvisor/pkg/unet"
)

const (
	dataSize       = 8 << 20
	getdentsCount  = 64 * 1024 // the sentry's getdents buffer
	dir10kEntries  = 10000
	noUID          = lisafs.UID(lisafs.NoUID)
	noGID          = lisafs.GID(lisafs.NoGID)
	metadataGorout = 4
)

var ctx = context.Background()

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", a...)
	os.Exit(1)
}

func check(err error, what string) {
	if err != nil {
		fatalf("%s: %v", what, err)
	}
}

// bench is one connection plus the fixture's FDs, walked once.
type bench struct {
	c       *lisafs.Client
	root    lisafs.ClientFD
	base    lisafs.ClientFD // -dir inside the mount (the root if empty)
	tag     string          // unique per process, for names in scratch/
	seq     uint64
	prepare bool
	cleanup []func() // untimed, after a workload (e.g. unlink its file)
}

func (b *bench) walk(from lisafs.ClientFD, names ...string) lisafs.ClientFD {
	st, ins, err := from.WalkMultiple(ctx, names)
	check(err, "walk "+strings.Join(names, "/"))
	if st != lisafs.WalkSuccess || len(ins) != len(names) {
		fatalf("walk %s: status %d with %d inodes (is the fixture there? see -prepare)",
			strings.Join(names, "/"), st, len(ins))
	}
	for _, in := range ins[:len(ins)-1] {
		b.c.CloseFD(ctx, in.ControlFD, false)
	}
	return b.c.NewFD(ins[len(ins)-1].ControlFD)
}

// ensure makes dir/.../file under base through the client when -prepare is set.
func (b *bench) ensure(dirs []string, file string, size int) {
	cur := b.base
	for _, d := range dirs {
		in, err := cur.Walk(ctx, d)
		if err == unix.ENOENT {
			in, err = cur.MkdirAt(ctx, d, 0o755, noUID, noGID)
		}
		check(err, "prepare "+d)
		cur = b.c.NewFD(in.ControlFD)
	}
	if file == "" {
		return
	}
	if _, err := cur.Walk(ctx, file); err == nil {
		return
	} else if err != unix.ENOENT {
		check(err, "prepare "+file)
	}
	_, fd, host, err := cur.OpenCreateAt(ctx, file, unix.O_RDWR, 0o644, noUID, noGID)
	check(err, "prepare create "+file)
	if host >= 0 {
		unix.Close(host)
	}
	w := b.c.NewFD(fd)
	buf := make([]byte, 64<<10)
	for off := 0; off < size; off += len(buf) {
		_, err := w.Write(ctx, buf, uint64(off))
		check(err, "prepare write "+file)
	}
	b.c.CloseFD(ctx, fd, true)
}

func (b *bench) name(prefix string) string {
	b.seq++
	return fmt.Sprintf("%s-%s-%d", prefix, b.tag, b.seq)
}

// A workload returns the operation to time; setup runs untimed before it.
type op func(i int)

func (b *bench) workload(name string) (op, int) {
	switch name {
	case "fstat":
		if b.prepare {
			b.ensure([]string{"a", "b"}, "c", 4096)
		}
		f := b.walk(b.base, "a", "b", "c")
		var st lisafs.Statx
		return func(int) { check(f.StatTo(ctx, &st), "fstat") }, 1
	case "walk3":
		if b.prepare {
			b.ensure([]string{"a", "b"}, "c", 4096)
		}
		names := []string{"a", "b", "c"}
		return func(int) {
			st, ins, err := b.base.WalkMultiple(ctx, names)
			check(err, "walk3")
			if st != lisafs.WalkSuccess || len(ins) != 3 {
				fatalf("walk3: status %d, %d inodes", st, len(ins))
			}
			// Batched like the sentry: one Close RPC per 100 FDs (about 1 in 33 walks).
			for _, in := range ins {
				b.c.CloseFD(ctx, in.ControlFD, false)
			}
		}, 1
	case "walkstat":
		if b.prepare {
			b.ensure([]string{"a", "b"}, "c", 4096)
		}
		names := []string{"a", "b", "c"}
		return func(int) {
			sts, err := b.base.WalkStat(ctx, names)
			check(err, "walkstat")
			if len(sts) != 3 {
				fatalf("walkstat: %d stats", len(sts))
			}
		}, 1
	case "openat_close":
		if b.prepare {
			b.ensure([]string{"a", "b"}, "c", 4096)
		}
		f := b.walk(b.base, "a", "b", "c")
		return func(int) {
			id, host, err := f.OpenAt(ctx, unix.O_RDONLY)
			check(err, "openat")
			if host >= 0 {
				unix.Close(host)
			}
			b.c.CloseFD(ctx, id, true)
		}, 2
	case "pread_4k", "pread_1m", "pread_2m":
		if b.prepare {
			b.ensure(nil, "data", dataSize)
		}
		f := b.walk(b.base, "data")
		id, host, err := f.OpenAt(ctx, unix.O_RDONLY)
		check(err, "open data")
		if host >= 0 {
			unix.Close(host)
		}
		r := b.c.NewFD(id)
		size := transferSize(name)
		buf := make([]byte, size)
		slots := dataSize / size
		return func(i int) {
			n, err := r.Read(ctx, buf, uint64((i%slots)*size))
			if err != nil && err != io.EOF {
				check(err, name)
			}
			if int(n) != size {
				fatalf("%s: read %d bytes, want %d", name, n, size)
			}
		}, rpcsFor(size)
	case "pwrite_4k", "pwrite_1m", "pwrite_2m":
		if b.prepare {
			b.ensure([]string{"scratch"}, "", 0)
		}
		dir := b.walk(b.base, "scratch")
		fname := b.name("w")
		_, id, host, err := dir.OpenCreateAt(ctx, fname, unix.O_RDWR, 0o644, noUID, noGID)
		check(err, "create "+fname)
		if host >= 0 {
			unix.Close(host)
		}
		w := b.c.NewFD(id)
		size := transferSize(name)
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = byte(i)
		}
		slots := dataSize / size // the file never grows past 8 MiB
		b.cleanup = append(b.cleanup, func() { dir.UnlinkAt(ctx, fname, 0) })
		return func(i int) {
			n, err := w.Write(ctx, buf, uint64((i%slots)*size))
			check(err, name)
			if int(n) != size {
				fatalf("%s: wrote %d bytes, want %d", name, n, size)
			}
		}, rpcsFor(size)
	case "getdents_10k":
		d := b.walk(b.base, "dir10k")
		id, host, err := d.OpenAt(ctx, unix.O_RDONLY|unix.O_DIRECTORY)
		check(err, "open dir10k")
		if host >= 0 {
			unix.Close(host)
		}
		dfd := b.c.NewFD(id)
		return func(int) {
			total := 0
			count := int32(-getdentsCount) // seek to 0 first
			for {
				ds, err := dfd.Getdents64(ctx, count)
				check(err, "getdents64")
				if len(ds) == 0 {
					break
				}
				total += len(ds)
				count = getdentsCount
			}
			if total < dir10kEntries {
				fatalf("getdents_10k: listed %d entries, want >= %d", total, dir10kEntries)
			}
		}, 0
	case "mkdir_unlink":
		if b.prepare {
			b.ensure([]string{"scratch"}, "", 0)
		}
		dir := b.walk(b.base, "scratch")
		return func(int) {
			n := b.name("d")
			in, err := dir.MkdirAt(ctx, n, 0o755, noUID, noGID)
			check(err, "mkdir")
			b.c.CloseFD(ctx, in.ControlFD, false)
			check(dir.UnlinkAt(ctx, n, unix.AT_REMOVEDIR), "rmdir")
		}, 2
	case "create_close_unlink":
		if b.prepare {
			b.ensure([]string{"scratch"}, "", 0)
		}
		dir := b.walk(b.base, "scratch")
		return func(int) {
			n := b.name("f")
			in, id, host, err := dir.OpenCreateAt(ctx, n, unix.O_RDWR, 0o644, noUID, noGID)
			check(err, "create")
			if host >= 0 {
				unix.Close(host)
			}
			b.c.CloseFD(ctx, in.ControlFD, false)
			b.c.CloseFD(ctx, id, true)
			check(dir.UnlinkAt(ctx, n, 0), "unlink")
		}, 3
	}
	fatalf("unknown workload %q", name)
	return nil, 0
}

// transferSize is the bytes one pread_*/pwrite_* operation moves. The 2 MiB
// ones fill the server's largest messages (the client splits them at the
// maximum message size), for the benchmark's memory figure.
func transferSize(name string) int {
	switch name[strings.IndexByte(name, '_')+1:] {
	case "1m":
		return 1 << 20
	case "2m":
		return 2 << 20
	}
	return 4096
}

// maxMessageSize is what the server advertised on Mount (the client keeps it
// unexported; read it the way tests/interop/lisafs-driver does).
var maxMessageSize = 1 << 20

func readMaxMessageSize(c *lisafs.Client) {
	defer func() { recover() }()
	maxMessageSize = int(reflect.ValueOf(c).Elem().FieldByName("maxMessageSize").Uint())
}

func rpcsFor(size int) int {
	// The client splits a transfer at maxMessageSize minus the metadata
	// (at most 20 bytes for PWrite; 64 leaves room).
	return int(math.Ceil(float64(size) / float64(maxMessageSize-64)))
}

type result struct {
	Workload   string  `json:"workload"`
	Transport  string  `json:"transport"`
	Channels   int     `json:"channels"`
	Goroutines int     `json:"goroutines"`
	N          int     `json:"n"`
	RPCsPerOp  int     `json:"rpcs_per_op,omitempty"`
	MedianNs   float64 `json:"median_ns"`
	P99Ns      float64 `json:"p99_ns"`
	MeanNs     float64 `json:"mean_ns"`
	MinNs      float64 `json:"min_ns"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	ElapsedS   float64 `json:"elapsed_s"`
}

func summarize(lat []int64, elapsed time.Duration) result {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum float64
	for _, l := range lat {
		sum += float64(l)
	}
	r := result{N: len(lat), ElapsedS: elapsed.Seconds()}
	if len(lat) > 0 {
		r.MedianNs = float64(lat[len(lat)/2])
		r.P99Ns = float64(lat[min(len(lat)-1, int(math.Ceil(0.99*float64(len(lat))))-1)])
		r.MeanNs = sum / float64(len(lat))
		r.MinNs = float64(lat[0])
		r.OpsPerSec = float64(len(lat)) / elapsed.Seconds()
	}
	return r
}

// think is the client's busy time after each timed operation (-think).
var think time.Duration

// timed runs fn up to iters times or for dur, whichever ends first.
func timed(fn op, warmup, iters int, dur time.Duration) ([]int64, time.Duration) {
	deadline := time.Now().Add(dur)
	for i := 0; i < warmup && (i%64 != 0 || time.Now().Before(deadline)); i++ {
		fn(i)
	}
	lat := make([]int64, 0, min(iters, 1<<20))
	start := time.Now()
	deadline = start.Add(dur)
	for i := 0; i < iters; i++ {
		t0 := time.Now()
		fn(i)
		t1 := time.Now()
		lat = append(lat, int64(t1.Sub(t0)))
		if t1.After(deadline) {
			break
		}
		for think > 0 && time.Since(t1) < think {
		}
	}
	return lat, time.Since(start)
}

// metadata4g: a metadata mix (FStat, WalkStat of 3, Walk of 1 + batched
// Close) from 4 goroutines sharing the client, as a sentry's tasks would.
func (b *bench) metadata4g(warmup, iters int, dur time.Duration) result {
	if b.prepare {
		b.ensure([]string{"a", "b"}, "c", 4096)
	}
	file := b.walk(b.base, "a", "b", "c")
	three := []string{"a", "b", "c"}
	mix := func(i int) {
		var st lisafs.Statx
		switch i % 3 {
		case 0:
			check(file.StatTo(ctx, &st), "fstat")
		case 1:
			_, err := b.base.WalkStat(ctx, three)
			check(err, "walkstat")
		case 2:
			in, err := b.base.Walk(ctx, "a")
			check(err, "walk")
			b.c.CloseFD(ctx, in.ControlFD, false)
		}
	}
	per := (iters + metadataGorout - 1) / metadataGorout
	lats := make([][]int64, metadataGorout)
	var wg sync.WaitGroup
	var stop atomic.Bool
	for g := 0; g < metadataGorout; g++ {
		for i := 0; i < warmup/metadataGorout; i++ {
			mix(i + g)
		}
	}
	start := time.Now()
	deadline := start.Add(dur)
	for g := 0; g < metadataGorout; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			l := make([]int64, 0, min(per, 1<<20))
			for i := 0; i < per && !stop.Load(); i++ {
				t0 := time.Now()
				mix(i + g)
				t1 := time.Now()
				l = append(l, int64(t1.Sub(t0)))
				if t1.After(deadline) {
					stop.Store(true)
				}
			}
			lats[g] = l
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []int64
	for _, l := range lats {
		all = append(all, l...)
	}
	r := summarize(all, elapsed)
	r.Goroutines = metadataGorout
	return r
}

func (b *bench) closePending() {
	for _, f := range b.cleanup {
		f()
	}
	b.cleanup = nil
}

func main() {
	sockPath := flag.String("socket", "", "the server's Unix stream socket")
	channels := flag.Int("channels", 0, "0: RPCs over the socket; N>0: StartChannels with GOMAXPROCS=N")
	workloads := flag.String("workload", "fstat", "comma-separated workloads: "+strings.Join(allWorkloads, ","))
	iters := flag.Int("iterations", 20000, "at most this many timed operations per workload")
	dur := flag.Duration("duration", 2*time.Second, "at most this long per workload (timed part)")
	warmup := flag.Int("warmup", 200, "untimed operations before timing (also bounded by -duration)")
	flag.DurationVar(&think, "think", 0, "busy time between two operations, untimed (a client that works between requests; single-stream workloads)")
	dir := flag.String("dir", "", "fixture directory inside the mount, slash-separated (default: the mount root)")
	prepare := flag.Bool("prepare", false, "create missing fixture files through the client (servers not backed by the host)")
	flag.Parse()
	if *sockPath == "" {
		fatalf("need -socket PATH")
	}
	if *workloads == "all" {
		*workloads = strings.Join(allWorkloads, ",")
	}

	var sock *unet.Socket
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if sock, err = unet.Connect(*sockPath, false); err == nil || time.Now().After(deadline) {
			break
		}
	}
	check(err, "connect "+*sockPath)
	c, root, mountFD, err := lisafs.NewClient(sock)
	check(err, "mount")
	readMaxMessageSize(c)
	if mountFD >= 0 {
		unix.Close(mountFD)
	}
	transport, nch := "socket", 0
	if *channels > 0 {
		old := runtime.GOMAXPROCS(*channels)
		err := c.StartChannels()
		runtime.GOMAXPROCS(old)
		check(err, "StartChannels")
		transport = "channels"
		nch = max(2, min(*channels, 4))
	}
	b := &bench{c: c, root: c.NewFD(root.ControlFD), tag: fmt.Sprint(os.Getpid()), prepare: *prepare}
	b.base = b.root
	if *dir != "" {
		parts := strings.Split(strings.Trim(*dir, "/"), "/")
		if *prepare {
			b.ensure(parts, "", 0)
		}
		b.base = b.walk(b.root, parts...)
	}

	enc := json.NewEncoder(os.Stdout)
	for _, w := range strings.Split(*workloads, ",") {
		var r result
		if w == "metadata_4g" {
			r = b.metadata4g(*warmup, *iters, *dur)
		} else {
			fn, rpcs := b.workload(w)
			lat, elapsed := timed(fn, *warmup, *iters, *dur)
			r = summarize(lat, elapsed)
			r.Goroutines = 1
			r.RPCsPerOp = rpcs
			b.closePending()
		}
		r.Workload, r.Transport, r.Channels = w, transport, nch
		check(enc.Encode(r), "write result")
	}
	c.Close()
}

var allWorkloads = []string{"fstat", "walk3", "walkstat", "openat_close", "pread_4k", "pread_1m",
	"pwrite_4k", "pwrite_1m", "getdents_10k", "mkdir_unlink", "create_close_unlink", "metadata_4g",
	"pread_2m", "pwrite_2m"}
