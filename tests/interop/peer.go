// Command peer is a Go program on the other end of ipcq's queues, for the
// interoperability tests.  It uses the standard library only and reaches
// the kernel's queues through raw system calls (package syscall), as a Go
// service without cgo would.  Linux on amd64 or arm64.
//
//	peer posix create NAME MAXMSG MSGSIZE MODE    (MODE in octal)
//	peer posix attr NAME
//	peer posix send NAME PRIO:DATA...
//	peer posix recv NAME COUNT [FORMAT]
//	peer posix unlink NAME
//	peer sysv create KEY MODE
//	peer sysv stat KEY
//	peer sysv send KEY TYPE:DATA...
//	peer sysv recv KEY COUNT MSGTYP [FORMAT]
//	peer sysv rm KEY
//
// DATA is a message in hex, or @json (a document encoded by encoding/json)
// or @msgpack (the same document, MessagePack encoded by hand).  recv
// prints a line per message: the priority or type, a space, then by
// FORMAT: hex (the default), json (the message decoded by encoding/json
// into the document's struct, then encoded again) or msgpack (the message
// decoded by a small MessagePack reader, then printed as JSON).  Each send
// or receive waits at most waitTime.  A failure prints a message on stderr
// and exits with status 1.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const waitTime = 5 * time.Second

// From <linux/ipc.h>; package syscall does not export them on every port.
const (
	ipcCreat  = 0o1000
	ipcExcl   = 0o2000
	ipcNowait = 0o4000
	ipcRmid   = 0
	ipcStat   = 2
)

// mqAttr is the kernel's struct mq_attr.
type mqAttr struct {
	Flags, Maxmsg, Msgsize, Curmsgs int64
	_                               [4]int64
}

// msqidDS is the kernel's struct msqid64_ds on 64-bit ports.
type msqidDS struct {
	Key                        int32
	UID, GID, CUID, CGID, Mode uint32
	Seq, pad2                  uint16
	_, _                       uint64
	Stime, Rtime, Ctime        int64
	Cbytes, Qnum, Qbytes       uint64
	Lspid, Lrpid               int32
	_, _                       uint64
}

// Doc is the fixed document of the json and msgpack tests.
type Doc struct {
	ID    int      `json:"id"`
	Name  string   `json:"name"`
	Price float64  `json:"price"`
	Tags  []string `json:"tags"`
	OK    bool     `json:"ok"`
	None  *int     `json:"none"`
	Neg   int      `json:"neg"`
	Big   int      `json:"big"`
}

var doc = Doc{ID: 7, Name: "grün", Price: 2.5, Tags: []string{"a", "b"},
	OK: true, Neg: -3, Big: 300}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "peer: "+format+"\n", args...)
	os.Exit(1)
}

func check(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func parseInt(text string) int64 {
	v, err := strconv.ParseInt(text, 0, 64)
	check(err, "not an integer")
	return v
}

// empty stands in for the data of an empty message: the kernel copies
// nothing from it, but the address must be valid.
var empty [1]byte

// ptr returns the address of b's first byte.  Every b passed is on the
// heap (a slice of computed length), where the collector does not move it.
func ptr(b []byte) uintptr {
	if len(b) == 0 {
		return uintptr(unsafe.Pointer(&empty[0]))
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

// deadline is an absolute CLOCK_REALTIME time, as mq_timedsend(2) takes.
func deadline() syscall.Timespec {
	return syscall.NsecToTimespec(time.Now().Add(waitTime).UnixNano())
}

// --- messages ---------------------------------------------------------

// msgpackDoc encodes doc by hand, field by field, in the order and with
// the smallest encodings that msgpack-python uses.
func msgpackDoc() []byte {
	var b bytes.Buffer
	str := func(s string) {
		b.WriteByte(0xa0 | byte(len(s))) // fixstr, up to 31 bytes
		b.WriteString(s)
	}
	b.WriteByte(0x88) // fixmap of 8 pairs
	str("id")
	b.WriteByte(byte(doc.ID)) // positive fixint
	str("name")
	str(doc.Name)
	str("price")
	b.WriteByte(0xcb) // float 64, big-endian
	binary.Write(&b, binary.BigEndian, math.Float64bits(doc.Price))
	str("tags")
	b.WriteByte(0x90 | byte(len(doc.Tags))) // fixarray
	for _, t := range doc.Tags {
		str(t)
	}
	str("ok")
	b.WriteByte(0xc3) // true
	str("none")
	b.WriteByte(0xc0) // nil
	str("neg")
	b.WriteByte(byte(int8(doc.Neg))) // negative fixint
	str("big")
	b.WriteByte(0xcd) // uint 16
	binary.Write(&b, binary.BigEndian, uint16(doc.Big))
	return b.Bytes()
}

func build(token string) []byte {
	switch token {
	case "@json":
		data, err := json.Marshal(doc)
		check(err, "json")
		return data
	case "@msgpack":
		return msgpackDoc()
	}
	data, err := hex.DecodeString(token)
	check(err, "bad hex")
	return data
}

func splitItem(item string) (int64, []byte) {
	tag, data, ok := strings.Cut(item, ":")
	if !ok {
		fail("expected TAG:DATA, got %q", item)
	}
	return parseInt(tag), build(data)
}

// msgpackReader decodes the MessagePack types a document uses.
type msgpackReader struct {
	data []byte
	pos  int
}

func (r *msgpackReader) take(n int) []byte {
	if r.pos+n > len(r.data) {
		panic(errors.New("msgpack: truncated"))
	}
	b := r.data[r.pos : r.pos+n]
	r.pos += n
	return b
}

func (r *msgpackReader) uint(n int) uint64 {
	var v uint64
	for _, c := range r.take(n) {
		v = v<<8 | uint64(c)
	}
	return v
}

func (r *msgpackReader) value() interface{} {
	c := r.take(1)[0]
	switch {
	case c <= 0x7f:
		return int64(c)
	case c >= 0xe0:
		return int64(int8(c))
	case c&0xf0 == 0x80:
		return r.mapOf(int(c & 0x0f))
	case c&0xf0 == 0x90:
		return r.arrayOf(int(c & 0x0f))
	case c&0xe0 == 0xa0:
		return string(r.take(int(c & 0x1f)))
	}
	switch c {
	case 0xc0:
		return nil
	case 0xc2:
		return false
	case 0xc3:
		return true
	case 0xc4, 0xc5, 0xc6:
		return r.take(int(r.uint(1 << (c - 0xc4))))
	case 0xca:
		return float64(math.Float32frombits(uint32(r.uint(4))))
	case 0xcb:
		return math.Float64frombits(r.uint(8))
	case 0xcc, 0xcd, 0xce, 0xcf:
		return r.uint(1 << (c - 0xcc))
	case 0xd0:
		return int64(int8(r.uint(1)))
	case 0xd1:
		return int64(int16(r.uint(2)))
	case 0xd2:
		return int64(int32(r.uint(4)))
	case 0xd3:
		return int64(r.uint(8))
	case 0xd9, 0xda, 0xdb:
		return string(r.take(int(r.uint(1 << (c - 0xd9)))))
	case 0xdc, 0xdd:
		return r.arrayOf(int(r.uint(2 << (c - 0xdc))))
	case 0xde, 0xdf:
		return r.mapOf(int(r.uint(2 << (c - 0xde))))
	}
	panic(fmt.Errorf("msgpack: unsupported type byte 0x%02x", c))
}

func (r *msgpackReader) arrayOf(n int) []interface{} {
	a := make([]interface{}, n)
	for i := range a {
		a[i] = r.value()
	}
	return a
}

func (r *msgpackReader) mapOf(n int) map[string]interface{} {
	m := make(map[string]interface{}, n)
	for i := 0; i < n; i++ {
		k, ok := r.value().(string)
		if !ok {
			panic(errors.New("msgpack: a map key is not a string"))
		}
		m[k] = r.value()
	}
	return m
}

func decodeMsgpack(data []byte) (v interface{}, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = p.(error)
		}
	}()
	r := &msgpackReader{data: data}
	v = r.value()
	if r.pos != len(data) {
		return nil, fmt.Errorf("msgpack: %d trailing bytes", len(data)-r.pos)
	}
	return v, nil
}

func printMessage(tag int64, data []byte, format string) {
	var text string
	switch format {
	case "hex":
		text = hex.EncodeToString(data)
	case "json":
		var d Doc
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		check(dec.Decode(&d), "json")
		out, err := json.Marshal(d)
		check(err, "json")
		text = string(out)
	case "msgpack":
		v, err := decodeMsgpack(data)
		check(err, "msgpack")
		out, err := json.Marshal(v)
		check(err, "json")
		text = string(out)
	default:
		fail("unknown format %q", format)
	}
	fmt.Printf("%d %s\n", tag, text)
}

// --- POSIX ------------------------------------------------------------

// mqOpen calls mq_open(2).  The kernel takes the name without the leading
// slash that mq_open(3) in libc strips.
func mqOpen(name string, flags int, mode uint32, attr *mqAttr) int {
	if !strings.HasPrefix(name, "/") {
		fail("a queue name starts with '/': %q", name)
	}
	p, err := syscall.BytePtrFromString(name[1:])
	check(err, "name")
	fd, _, errno := syscall.Syscall6(syscall.SYS_MQ_OPEN,
		uintptr(unsafe.Pointer(p)), uintptr(flags), uintptr(mode),
		uintptr(unsafe.Pointer(attr)), 0, 0)
	if errno != 0 {
		fail("mq_open: %v", errno)
	}
	return int(fd)
}

func mqGetattr(fd int) mqAttr {
	var attr mqAttr
	_, _, errno := syscall.Syscall(syscall.SYS_MQ_GETSETATTR, uintptr(fd), 0,
		uintptr(unsafe.Pointer(&attr)))
	if errno != 0 {
		fail("mq_getsetattr: %v", errno)
	}
	return attr
}

func posixMain(args []string) {
	cmd, name := args[0], args[1]
	switch {
	case cmd == "create" && len(args) == 5:
		mode, err := strconv.ParseUint(args[4], 8, 32)
		check(err, "mode")
		attr := mqAttr{Maxmsg: parseInt(args[2]), Msgsize: parseInt(args[3])}
		syscall.Umask(0) // the mode given is the mode wanted
		fd := mqOpen(name, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL,
			uint32(mode), &attr)
		attr = mqGetattr(fd)
		fmt.Printf("maxmsg=%d msgsize=%d\n", attr.Maxmsg, attr.Msgsize)
		syscall.Close(fd)
	case cmd == "attr" && len(args) == 2:
		fd := mqOpen(name, syscall.O_RDONLY, 0, nil)
		attr := mqGetattr(fd)
		var st syscall.Stat_t
		check(syscall.Fstat(fd, &st), "fstat")
		fmt.Printf("maxmsg=%d msgsize=%d curmsgs=%d mode=%o\n", attr.Maxmsg,
			attr.Msgsize, attr.Curmsgs, st.Mode&0o777)
		syscall.Close(fd)
	case cmd == "send":
		fd := mqOpen(name, syscall.O_WRONLY, 0, nil)
		for _, item := range args[2:] {
			prio, data := splitItem(item)
			ts := deadline()
			for {
				_, _, errno := syscall.Syscall6(syscall.SYS_MQ_TIMEDSEND,
					uintptr(fd), ptr(data), uintptr(len(data)),
					uintptr(prio), uintptr(unsafe.Pointer(&ts)), 0)
				if errno == 0 {
					break
				}
				// Go's own signals (preemption) can interrupt the call.
				if errno != syscall.EINTR {
					fail("mq_timedsend: %v", errno)
				}
			}
		}
		syscall.Close(fd)
	case cmd == "recv" && (len(args) == 3 || len(args) == 4):
		count := parseInt(args[2])
		format := "hex"
		if len(args) == 4 {
			format = args[3]
		}
		fd := mqOpen(name, syscall.O_RDONLY, 0, nil)
		// The buffer must hold the queue's largest message (mq_msgsize).
		buf := make([]byte, mqGetattr(fd).Msgsize)
		for i := int64(0); i < count; i++ {
			ts := deadline()
			var prio uint32
			for {
				n, _, errno := syscall.Syscall6(syscall.SYS_MQ_TIMEDRECEIVE,
					uintptr(fd), ptr(buf), uintptr(len(buf)),
					uintptr(unsafe.Pointer(&prio)),
					uintptr(unsafe.Pointer(&ts)), 0)
				if errno == 0 {
					printMessage(int64(prio), buf[:n], format)
					break
				}
				if errno != syscall.EINTR {
					fail("mq_timedreceive: %v", errno)
				}
			}
		}
		syscall.Close(fd)
	case cmd == "unlink" && len(args) == 2:
		p, err := syscall.BytePtrFromString(strings.TrimPrefix(name, "/"))
		check(err, "name")
		_, _, errno := syscall.Syscall(syscall.SYS_MQ_UNLINK,
			uintptr(unsafe.Pointer(p)), 0, 0)
		if errno != 0 {
			fail("mq_unlink: %v", errno)
		}
	default:
		fail("bad posix command")
	}
}

// --- System V ---------------------------------------------------------

func msgget(key int64, flags int) int {
	id, _, errno := syscall.Syscall(syscall.SYS_MSGGET,
		uintptr(uint32(key)), uintptr(flags), 0)
	if errno != 0 {
		fail("msgget: %v", errno)
	}
	return int(id)
}

func readMsgmax() int {
	data, err := os.ReadFile("/proc/sys/kernel/msgmax")
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return v
		}
	}
	return 8192
}

// retryable tells whether a System V call that failed with errno should
// be tried again before the deadline: the queue is full or empty (the
// call used IPC_NOWAIT, since msgsnd and msgrcv have no timeout), or a
// signal interrupted it (signal(7): these calls are never restarted).
func retryable(errno, busy syscall.Errno, end time.Time) bool {
	return (errno == busy || errno == syscall.EINTR) && time.Now().Before(end)
}

func sysvMain(args []string) {
	cmd := args[0]
	switch {
	case cmd == "create" && len(args) == 3:
		mode, err := strconv.ParseUint(args[2], 8, 32)
		check(err, "mode")
		id := msgget(parseInt(args[1]), ipcCreat|ipcExcl|int(mode))
		fmt.Printf("id=%d\n", id)
	case cmd == "stat" && len(args) == 2:
		var ds msqidDS
		id := msgget(parseInt(args[1]), 0)
		_, _, errno := syscall.Syscall(syscall.SYS_MSGCTL, uintptr(id),
			ipcStat, uintptr(unsafe.Pointer(&ds)))
		if errno != 0 {
			fail("msgctl: %v", errno)
		}
		fmt.Printf("qbytes=%d qnum=%d mode=%o\n", ds.Qbytes, ds.Qnum,
			ds.Mode&0o777)
	case cmd == "send":
		id := msgget(parseInt(args[1]), 0)
		for _, item := range args[2:] {
			mtype, data := splitItem(item)
			// struct msgbuf: a C long (native byte order), then the text.
			buf := make([]byte, 8+len(data))
			*(*int64)(unsafe.Pointer(&buf[0])) = mtype
			copy(buf[8:], data)
			end := time.Now().Add(waitTime)
			for {
				_, _, errno := syscall.Syscall6(syscall.SYS_MSGSND,
					uintptr(id), ptr(buf), uintptr(len(data)), ipcNowait,
					0, 0)
				if errno == 0 {
					break
				}
				if !retryable(errno, syscall.EAGAIN, end) {
					fail("msgsnd: %v", errno)
				}
				time.Sleep(time.Millisecond)
			}
		}
	case cmd == "recv" && (len(args) == 4 || len(args) == 5):
		id := msgget(parseInt(args[1]), 0)
		count, msgtyp := parseInt(args[2]), parseInt(args[3])
		format := "hex"
		if len(args) == 5 {
			format = args[4]
		}
		msgmax := readMsgmax()
		buf := make([]byte, 8+msgmax)
		for i := int64(0); i < count; i++ {
			end := time.Now().Add(waitTime)
			for {
				n, _, errno := syscall.Syscall6(syscall.SYS_MSGRCV,
					uintptr(id), ptr(buf), uintptr(msgmax),
					uintptr(msgtyp), ipcNowait, 0)
				if errno == 0 {
					mtype := *(*int64)(unsafe.Pointer(&buf[0]))
					printMessage(mtype, buf[8:8+n], format)
					break
				}
				if !retryable(errno, syscall.ENOMSG, end) {
					fail("msgrcv: %v", errno)
				}
				time.Sleep(time.Millisecond)
			}
		}
	case cmd == "rm" && len(args) == 2:
		id := msgget(parseInt(args[1]), 0)
		_, _, errno := syscall.Syscall(syscall.SYS_MSGCTL, uintptr(id),
			ipcRmid, 0)
		if errno != 0 {
			fail("msgctl: %v", errno)
		}
	default:
		fail("bad sysv command")
	}
}

func main() {
	if len(os.Args) >= 4 && os.Args[1] == "posix" {
		posixMain(os.Args[2:])
	} else if len(os.Args) >= 4 && os.Args[1] == "sysv" {
		sysvMain(os.Args[2:])
	} else {
		fail("usage: peer posix|sysv COMMAND ARGS... (see peer.go)")
	}
}
