// Command lisafs-driver puts gVisor's real LISAFS client (gvisor.dev/gvisor/pkg/lisafs)
// in front of a server under test, and is itself driven by Python over JSON lines:
//
//	stdin:  {"op": "walk", "fd": 1, "name": "file"}
//	stdout: {"ok": true, "inode": {"fd": 2, "stat": {...}}}
//	        {"ok": false, "errno": 2, "error": "no such file or directory"}
//
// The first stdout line is the mount result. errno -1 marks a driver-side problem
// (bad arguments, unknown op, a recovered panic, a non-errno error) rather than an
// errno that came from the server or the client library.
// See tests/interop/goclient.py for the Python side and the op table.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/context"
	"gvisor.dev/gvisor/pkg/lisafs"
	"gvisor.dev/gvisor/pkg/unet"
)

type result = map[string]any

// driverError is an error that did not come from the server (errno -1 on the wire).
type driverError string

func (e driverError) Error() string { return string(e) }

// args wraps a decoded request. Numbers arrive as json.Number so that uint64
// values (FDIDs, offsets, NoUID) survive without float rounding. Missing or
// malformed arguments panic with a driverError, which dispatch recovers.
type args map[string]any

func (a args) has(k string) bool { _, ok := a[k]; return ok }

func (a args) need(k string) any {
	v, ok := a[k]
	if !ok {
		panic(driverError(fmt.Sprintf("missing argument %q", k)))
	}
	return v
}

func (a args) num(k string) json.Number {
	n, ok := a.need(k).(json.Number)
	if !ok {
		panic(driverError(fmt.Sprintf("argument %q must be a number", k)))
	}
	return n
}

// u64 parses unsigned values; negative input wraps (so -1 gives NoUID for a u32).
func (a args) u64(k string, def ...uint64) uint64 {
	if !a.has(k) && len(def) > 0 {
		return def[0]
	}
	n := a.num(k)
	var u uint64
	if _, err := fmt.Sscan(n.String(), &u); err == nil {
		return u
	}
	i, err := n.Int64()
	if err != nil {
		panic(driverError(fmt.Sprintf("argument %q: %v", k, err)))
	}
	return uint64(i)
}

func (a args) i64(k string, def ...int64) int64 {
	if !a.has(k) && len(def) > 0 {
		return def[0]
	}
	i, err := a.num(k).Int64()
	if err != nil {
		panic(driverError(fmt.Sprintf("argument %q: %v", k, err)))
	}
	return i
}

func (a args) u32(k string, def ...uint32) uint32 {
	var d []uint64
	for _, v := range def {
		d = append(d, uint64(v))
	}
	return uint32(a.u64(k, d...))
}

func (a args) fd(k string) lisafs.FDID { return lisafs.FDID(a.u64(k)) }

func (a args) str(k string, def ...string) string {
	if !a.has(k) && len(def) > 0 {
		return def[0]
	}
	s, ok := a.need(k).(string)
	if !ok {
		panic(driverError(fmt.Sprintf("argument %q must be a string", k)))
	}
	return s
}

func (a args) bool(k string, def bool) bool {
	if !a.has(k) {
		return def
	}
	b, ok := a[k].(bool)
	if !ok {
		panic(driverError(fmt.Sprintf("argument %q must be a bool", k)))
	}
	return b
}

func (a args) list(k string) []any {
	l, ok := a.need(k).([]any)
	if !ok {
		panic(driverError(fmt.Sprintf("argument %q must be a list", k)))
	}
	return l
}

func (a args) strs(k string) []string {
	var out []string
	for _, v := range a.list(k) {
		s, ok := v.(string)
		if !ok {
			panic(driverError(fmt.Sprintf("argument %q must be a list of strings", k)))
		}
		out = append(out, s)
	}
	return out
}

func (a args) fds(k string) []lisafs.FDID {
	var out []lisafs.FDID
	for _, v := range a.list(k) {
		out = append(out, lisafs.FDID(args{k: v}.u64(k)))
	}
	return out
}

// bytes reads KEY_b64 (base64) or, for convenience, KEY as a plain string.
func (a args) bytes(k string) []byte {
	if a.has(k + "_b64") {
		b, err := base64.StdEncoding.DecodeString(a.str(k + "_b64"))
		if err != nil {
			panic(driverError(fmt.Sprintf("argument %q: %v", k+"_b64", err)))
		}
		return b
	}
	if a.has(k) {
		return []byte(a.str(k))
	}
	return nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func statx(s *lisafs.Statx) result {
	return result{
		"mask": s.Mask, "blksize": s.Blksize, "attributes": s.Attributes,
		"nlink": s.Nlink, "uid": s.UID, "gid": s.GID, "mode": s.Mode, "ino": s.Ino,
		"size": s.Size, "blocks": s.Blocks, "attributes_mask": s.AttributesMask,
		"atime_sec": s.Atime.Sec, "atime_nsec": s.Atime.Nsec,
		"btime_sec": s.Btime.Sec, "btime_nsec": s.Btime.Nsec,
		"ctime_sec": s.Ctime.Sec, "ctime_nsec": s.Ctime.Nsec,
		"mtime_sec": s.Mtime.Sec, "mtime_nsec": s.Mtime.Nsec,
		"rdev_major": s.RdevMajor, "rdev_minor": s.RdevMinor,
		"dev_major": s.DevMajor, "dev_minor": s.DevMinor,
	}
}

func inode(i *lisafs.Inode) result { return result{"fd": uint64(i.ControlFD), "stat": statx(&i.Stat)} }

func inodes(l []lisafs.Inode) []result {
	out := make([]result, 0, len(l))
	for i := range l {
		out = append(out, inode(&l[i]))
	}
	return out
}

// driver holds the client and the bound sockets returned by BindAt: Listen and
// Accept live on ClientBoundSocketFD, which can only be obtained from BindAt.
type driver struct {
	c     *lisafs.Client
	ctx   context.Context
	mu    sync.Mutex
	bound map[lisafs.FDID]*lisafs.ClientBoundSocketFD
}

func (d *driver) fd(a args) lisafs.ClientFD { return d.c.NewFD(a.fd("fd")) }

func (d *driver) boundFD(a args) *lisafs.ClientBoundSocketFD {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.bound[a.fd("fd")]
	if !ok {
		panic(driverError(fmt.Sprintf("fd %d is not a bound socket from bind_at", a.fd("fd"))))
	}
	return b
}

// hostFD reports on a host FD the server donated and then closes it, so tests can
// check FD donation: {"host_fd": bool, "host_stat": {...}, "host_flags": N,
// "host_data_b64": pread(read_host bytes at read_host_offset)}; write_host_b64 is
// pwritten at write_host_offset first (reported as host_written).
func hostFD(fd int, a args, out result) {
	out["host_fd"] = fd >= 0
	if fd < 0 {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil {
		out["host_stat"] = result{"size": st.Size, "mode": st.Mode, "ino": st.Ino,
			"dev_major": unix.Major(st.Dev), "dev_minor": unix.Minor(st.Dev)}
	}
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
		out["host_flags"] = fl
	}
	if w := a.bytes("write_host"); w != nil {
		n, err := unix.Pwrite(fd, w, a.i64("write_host_offset", 0))
		out["host_written"] = n
		if err != nil {
			out["host_write_errno"] = errnoOf(err)
		}
	}
	if n := a.u64("read_host", 0); n > 0 {
		buf := make([]byte, n)
		got, err := unix.Pread(fd, buf, a.i64("read_host_offset", 0))
		if err != nil {
			out["host_read_errno"] = errnoOf(err)
			got = 0
		}
		out["host_data_b64"] = b64(buf[:got])
	}
}

// sockIO exercises a host socket FD from Connect/Accept and closes it: it sends
// send_b64, then reads up to recv bytes (waiting at most recv_timeout_ms).
func sockIO(fd int, a args, out result) {
	out["host_fd"] = fd >= 0
	if fd < 0 {
		return
	}
	defer unix.Close(fd)
	if s := a.bytes("send"); s != nil {
		n, err := unix.Write(fd, s)
		out["sent"] = n
		if err != nil {
			out["send_errno"] = errnoOf(err)
		}
	}
	if n := a.u64("recv", 0); n > 0 {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		var data []byte
		if k, _ := unix.Poll(pfd, int(a.i64("recv_timeout_ms", 5000))); k == 1 {
			buf := make([]byte, n)
			if got, err := unix.Read(fd, buf); err == nil {
				data = buf[:got]
			}
		}
		out["recv_b64"] = b64(data)
	}
}

// liveFD filters an FD returned next to err. On error the client has already
// closed donated FDs but leaves their stale numbers in place, so touching them
// could close an unrelated FD opened since.
func liveFD(fd int, err error) int {
	if err != nil {
		return -1
	}
	return fd
}

func errnoOf(err error) int {
	var e unix.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return -1
}

func (d *driver) dispatch(op string, a args) (out result, err error) {
	defer func() {
		if r := recover(); r != nil {
			if de, ok := r.(driverError); ok {
				out, err = nil, de
			} else {
				out, err = nil, driverError(fmt.Sprintf("panic in %s: %v", op, r))
			}
		}
	}()
	ctx := d.ctx
	out = result{}
	switch op {
	case "fstat":
		var s lisafs.Statx
		f := d.fd(a)
		err = f.StatTo(ctx, &s)
		out["stat"] = statx(&s)
	case "setstat":
		f := d.fd(a)
		s := linux.Statx{
			Mask: a.u32("mask"), Mode: uint16(a.u32("mode", 0)),
			UID: a.u32("uid", uint32(lisafs.NoUID)), GID: a.u32("gid", uint32(lisafs.NoGID)),
			Size:  a.u64("size", 0),
			Atime: linux.StatxTimestamp{Sec: a.i64("atime_sec", 0), Nsec: a.u32("atime_nsec", 0)},
			Mtime: linux.StatxTimestamp{Sec: a.i64("mtime_sec", 0), Nsec: a.u32("mtime_nsec", 0)},
		}
		var mask uint32
		var ferr error
		mask, ferr, err = f.SetStat(ctx, &s)
		out["failure_mask"], out["failure_errno"] = mask, 0
		if ferr != nil {
			out["failure_errno"] = errnoOf(ferr)
		}
	case "walk":
		f := d.fd(a)
		var in lisafs.Inode
		in, err = f.Walk(ctx, a.str("name"))
		out["inode"] = inode(&in)
	case "walk_multiple":
		f := d.fd(a)
		var st lisafs.WalkStatus
		var ins []lisafs.Inode
		st, ins, err = f.WalkMultiple(ctx, a.strs("names"))
		out["status"], out["inodes"] = int(st), inodes(ins)
	case "walk_stat":
		f := d.fd(a)
		var stats []lisafs.Statx
		stats, err = f.WalkStat(ctx, a.strs("names"))
		l := make([]result, 0, len(stats))
		for i := range stats {
			l = append(l, statx(&stats[i]))
		}
		out["stats"] = l
	case "open_at":
		f := d.fd(a)
		id, host, e := f.OpenAt(ctx, a.u32("flags"))
		err = e
		out["open_fd"] = uint64(id)
		hostFD(liveFD(host, e), a, out)
	case "open_create_at":
		f := d.fd(a)
		in, id, host, e := f.OpenCreateAt(ctx, a.str("name"), a.u32("flags"), linux.FileMode(a.u32("mode")),
			lisafs.UID(a.u32("uid", uint32(lisafs.NoUID))), lisafs.GID(a.u32("gid", uint32(lisafs.NoGID))))
		err = e
		out["inode"], out["open_fd"] = inode(&in), uint64(id)
		hostFD(liveFD(host, e), a, out)
	case "close":
		d.c.CloseFD(ctx, a.fd("fd"), a.bool("flush", true))
	case "close_batch":
		ids := a.fds("fds")
		for i, id := range ids {
			d.c.CloseFD(ctx, id, i == len(ids)-1 && a.bool("flush", true))
		}
	case "sync":
		if a.has("fds") {
			err = d.c.SyncFDs(ctx, a.fds("fds"))
		} else {
			f := d.fd(a)
			err = f.Sync(ctx)
		}
	case "pread":
		f := d.fd(a)
		buf := make([]byte, a.u64("count"))
		n, e := f.Read(ctx, buf, a.u64("offset", 0))
		if e == io.EOF { // the client's way of saying "0 bytes"
			e = nil
			out["eof"] = true
		}
		err = e
		out["data_b64"] = b64(buf[:n])
	case "pwrite":
		f := d.fd(a)
		var n uint64
		n, err = f.Write(ctx, a.bytes("data"), a.u64("offset", 0))
		out["count"] = n
	case "mkdir_at":
		f := d.fd(a)
		var in lisafs.Inode
		in, err = f.MkdirAt(ctx, a.str("name"), linux.FileMode(a.u32("mode")),
			lisafs.UID(a.u32("uid", uint32(lisafs.NoUID))), lisafs.GID(a.u32("gid", uint32(lisafs.NoGID))))
		out["inode"] = inode(&in)
	case "mknod_at":
		f := d.fd(a)
		var in lisafs.Inode
		in, err = f.MknodAt(ctx, a.str("name"), linux.FileMode(a.u32("mode")),
			lisafs.UID(a.u32("uid", uint32(lisafs.NoUID))), lisafs.GID(a.u32("gid", uint32(lisafs.NoGID))),
			a.u32("minor", 0), a.u32("major", 0))
		out["inode"] = inode(&in)
	case "symlink_at":
		f := d.fd(a)
		var in lisafs.Inode
		in, err = f.SymlinkAt(ctx, a.str("name"), a.str("target"),
			lisafs.UID(a.u32("uid", uint32(lisafs.NoUID))), lisafs.GID(a.u32("gid", uint32(lisafs.NoGID))))
		out["inode"] = inode(&in)
	case "link_at":
		f := d.fd(a)
		var in lisafs.Inode
		in, err = f.LinkAt(ctx, a.fd("target"), a.str("name"))
		out["inode"] = inode(&in)
	case "statfs":
		f := d.fd(a)
		var s lisafs.StatFS
		err = f.StatFSTo(ctx, &s)
		out["statfs"] = result{"type": s.Type, "block_size": s.BlockSize, "blocks": s.Blocks,
			"blocks_free": s.BlocksFree, "blocks_available": s.BlocksAvailable,
			"files": s.Files, "files_free": s.FilesFree, "name_length": s.NameLength}
	case "allocate":
		f := d.fd(a)
		err = f.Allocate(ctx, a.u64("mode", 0), a.u64("offset", 0), a.u64("length"))
	case "read_link_at":
		f := d.fd(a)
		out["target"], err = f.ReadLinkAt(ctx)
	case "flush":
		f := d.fd(a)
		err = f.Flush(ctx)
	case "connect":
		f := d.fd(a)
		sock, e := f.Connect(ctx, linux.SockType(a.u32("sock_type", unix.SOCK_STREAM)),
			lisafs.UID(a.u32("euid", uint32(lisafs.NoUID))), lisafs.GID(a.u32("egid", uint32(lisafs.NoGID))))
		err = e
		sockIO(liveFD(sock, e), a, out)
	case "unlink_at":
		f := d.fd(a)
		err = f.UnlinkAt(ctx, a.str("name"), a.u32("flags", 0))
	case "rename_at":
		f := d.fd(a)
		err = f.RenameAt(ctx, a.str("old_name"), a.fd("new_dir"), a.str("new_name"), a.u32("flags", 0))
	case "getdents64":
		f := d.fd(a)
		ds, e := f.Getdents64(ctx, int32(a.i64("count", 65536)))
		err = e
		l := make([]result, 0, len(ds))
		for _, de := range ds {
			l = append(l, result{"ino": uint64(de.Ino), "dev_minor": uint32(de.DevMinor),
				"dev_major": uint32(de.DevMajor), "off": uint64(de.Off), "type": uint8(de.Type),
				"name": string(de.Name)})
		}
		out["dirents"] = l
	case "get_xattr":
		f := d.fd(a)
		v, e := f.GetXattr(ctx, a.str("name"), a.u64("size", 65536))
		err = e
		out["value_b64"] = b64([]byte(v))
	case "set_xattr":
		f := d.fd(a)
		err = f.SetXattr(ctx, a.str("name"), string(a.bytes("value")), a.u32("flags", 0))
	case "list_xattr":
		f := d.fd(a)
		var names []string
		names, err = f.ListXattr(ctx, a.u64("size", 65536))
		if names == nil {
			names = []string{}
		}
		out["names"] = names
	case "remove_xattr":
		f := d.fd(a)
		err = f.RemoveXattr(ctx, a.str("name"))
	case "bind_at":
		f := d.fd(a)
		in, b, e := f.BindAt(ctx, linux.SockType(a.u32("sock_type", unix.SOCK_STREAM)), a.str("name"),
			linux.FileMode(a.u32("mode", 0o755)),
			lisafs.UID(a.u32("uid", uint32(lisafs.NoUID))), lisafs.GID(a.u32("gid", uint32(lisafs.NoGID))))
		err = e
		out["inode"] = inode(&in)
		if b != nil {
			// The bound FDID is not exported; recover it to key our table.
			id := lisafs.FDID(reflect.ValueOf(b).Elem().FieldByName("fd").Uint())
			d.mu.Lock()
			d.bound[id] = b
			d.mu.Unlock()
			out["bound_fd"], out["notification_fd"] = uint64(id), b.NotificationFD() >= 0
		}
	case "listen":
		err = d.boundFD(a).Listen(ctx, int32(a.i64("backlog", 16)))
	case "accept":
		sock, e := d.boundFD(a).Accept(ctx)
		err = e
		sockIO(liveFD(sock, e), a, out)
	case "close_bound":
		b := d.boundFD(a)
		d.mu.Lock()
		delete(d.bound, a.fd("fd"))
		d.mu.Unlock()
		b.Close(ctx)
	case "is_supported":
		out["supported"] = d.c.IsSupported(lisafs.MID(a.u32("mid")))
	case "raw":
		return d.raw(a)
	case "parallel":
		return d.parallel(a)
	default:
		return nil, driverError(fmt.Sprintf("unknown op %q", op))
	}
	return out, err
}

// raw sends an arbitrary MID and payload through the client's own transport
// (channel if any is idle, else the socket). The client still refuses MIDs the
// server did not list (EOPNOTSUPP) and payloads over maxMessageSize (EIO), and
// answers EINVAL itself if the response MID differs from the request's.
func (d *driver) raw(a args) (result, error) {
	payload := a.bytes("payload")
	fds := make([]int, a.u64("want_fds", 0))
	var resp []byte
	err := d.c.SndRcvMessage(lisafs.MID(a.u32("mid")), uint32(len(payload)),
		func(buf []byte) []byte { return buf[copy(buf, payload):] },
		func(buf []byte) ([]byte, bool) { resp = append([]byte(nil), buf...); return nil, true },
		fds, func() string { return "raw" }, func() string { return "raw" })
	got := 0
	for _, fd := range fds {
		if liveFD(fd, err) >= 0 {
			got++
			unix.Close(fd)
		}
	}
	return result{"payload_b64": b64(resp), "fds": got}, err
}

// parallel runs `requests` in order, `repeat` times, from each of `goroutines`
// goroutines at once. results[g] lists goroutine g's responses unless summary is
// set; ok_count/err_count and errnos (errno -> count) are always returned. A
// request with "autoclose": true has the FDIDs it returns closed right away.
func (d *driver) parallel(a args) (result, error) {
	n, repeat := int(a.i64("goroutines", 4)), int(a.i64("repeat", 1))
	var reqs []args
	for _, r := range a.list("requests") {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, driverError("requests must be objects")
		}
		reqs = append(reqs, args(m))
	}
	summary := a.bool("summary", false)
	results := make([][]result, n)
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < repeat; k++ {
				for _, r := range reqs {
					op, _ := r["op"].(string)
					res := response(d.dispatch(op, r))
					if r.bool("autoclose", false) {
						d.autoclose(res)
					}
					results[g] = append(results[g], res)
				}
			}
		}(g)
	}
	wg.Wait()
	okCount, errCount, errnos := 0, 0, map[string]int{}
	for _, rs := range results {
		for _, r := range rs {
			if r["ok"] == true {
				okCount++
			} else {
				errCount++
				errnos[fmt.Sprint(r["errno"])]++
			}
		}
	}
	out := result{"ok_count": okCount, "err_count": errCount, "errnos": errnos}
	if !summary {
		out["results"] = results
	}
	return out, nil
}

// autoclose closes the FDIDs a successful response handed out (its inode's control
// FD and any open FD), so long parallel runs do not pile up server-side FDs.
func (d *driver) autoclose(res result) {
	if res["ok"] != true {
		return
	}
	var ids []lisafs.FDID
	if in, ok := res["inode"].(result); ok {
		if id, ok := in["fd"].(uint64); ok && id != 0 {
			ids = append(ids, lisafs.FDID(id))
		}
	}
	if id, ok := res["open_fd"].(uint64); ok && id != 0 {
		ids = append(ids, lisafs.FDID(id))
	}
	for _, id := range ids {
		d.c.CloseFD(d.ctx, id, false)
	}
}

func response(out result, err error) result {
	if err != nil {
		return result{"ok": false, "errno": errnoOf(err), "error": err.Error()}
	}
	if out == nil {
		out = result{}
	}
	out["ok"] = true
	return out
}

// clientInfo reads unexported Client state that NewClient does not return (the
// negotiated max message size, the supported MIDs, the channel count) so tests
// can check what the server advertised. Read-only, best effort.
func clientInfo(c *lisafs.Client, out result) {
	defer func() { recover() }()
	v := reflect.ValueOf(c).Elem()
	out["max_message_size"] = v.FieldByName("maxMessageSize").Uint()
	sup := []int{}
	for m := 0; m < 1024; m++ {
		if c.IsSupported(lisafs.MID(m)) {
			sup = append(sup, m)
		}
	}
	out["supported"] = sup
	out["channels"] = v.FieldByName("channels").Len()
}

func main() {
	sockPath := flag.String("socket", "", "connect to this Unix stream socket")
	sockFD := flag.Int("fd", -1, "use this inherited connected stream socket FD")
	channels := flag.Bool("channels", false, "call StartChannels after mounting")
	flag.Parse()

	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	emit := func(r result) {
		if err := enc.Encode(r); err != nil {
			enc.Encode(result{"ok": false, "errno": -1, "error": "encode: " + err.Error()})
		}
		w.Flush()
	}
	fatal := func(err error) {
		emit(response(nil, err))
		os.Exit(1)
	}

	var sock *unet.Socket
	var err error
	switch {
	case *sockPath != "" && *sockFD >= 0:
		fatal(driverError("give -socket or -fd, not both"))
	case *sockPath != "":
		// The server may still be starting; retry briefly rather than racing it.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if sock, err = unet.Connect(*sockPath, false); err == nil || time.Now().After(deadline) {
				break
			}
		}
	case *sockFD >= 0:
		sock, err = unet.NewSocket(*sockFD)
	default:
		err = driverError("need -socket PATH or -fd N")
	}
	if err != nil {
		fatal(err)
	}

	c, root, mountFD, err := lisafs.NewClient(sock)
	if err != nil {
		fatal(err)
	}
	if *channels {
		if err := c.StartChannels(); err != nil {
			fatal(fmt.Errorf("StartChannels: %w", err))
		}
	}
	start := result{"root": inode(&root), "mount_fd": mountFD >= 0}
	if mountFD >= 0 {
		unix.Close(mountFD)
	}
	clientInfo(c, start)
	emit(response(start, nil))

	d := &driver{c: c, ctx: context.Background(), bound: map[lisafs.FDID]*lisafs.ClientBoundSocketFD{}}
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, rerr := in.ReadBytes('\n') // no line-length limit: pwrite data can be MBs
		if len(line) > 0 {
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.UseNumber()
			var a args
			if err := dec.Decode(&a); err != nil {
				emit(response(nil, driverError("bad request: "+err.Error())))
			} else {
				op, _ := a["op"].(string)
				emit(response(d.dispatch(op, a)))
			}
		}
		if rerr != nil {
			break
		}
	}
	c.Close()
}
