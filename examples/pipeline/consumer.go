// Stage 3 of the pipeline: a Go program that reads the Python stage's
// JSON messages from a System V queue, with raw system calls and the
// standard library only.
//
//	consumer KEY
//
// The message type says what the JSON holds: 1 a sample, 2 an alert, 3
// the summary, after which the consumer stops.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

const ipcNowait = 0o4000 // <linux/ipc.h>

type sample struct {
	Sensor  int     `json:"sensor"`
	Celsius float64 `json:"celsius"`
	Time    float64 `json:"time"`
}

type alert struct {
	Sensor  int     `json:"sensor"`
	Celsius float64 `json:"celsius"`
}

type done struct {
	Readings    int     `json:"readings"`
	Alerts      int     `json:"alerts"`
	MeanCelsius float64 `json:"mean_celsius"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "consumer: "+format+"\n", args...)
	os.Exit(1)
}

// receive returns the next message's type and text.  msgrcv(2) has no
// timeout, so it polls with IPC_NOWAIT and gives up after 10 s of silence.
func receive(id int, buf []byte) (int64, []byte) {
	end := time.Now().Add(10 * time.Second)
	for {
		n, _, errno := syscall.Syscall6(syscall.SYS_MSGRCV, uintptr(id),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)-8), 0,
			ipcNowait, 0)
		if errno == 0 {
			// struct msgbuf: a C long, then the text.
			return *(*int64)(unsafe.Pointer(&buf[0])), buf[8 : 8+n]
		}
		if errno != syscall.ENOMSG && errno != syscall.EINTR {
			fail("msgrcv: %v", errno)
		}
		if time.Now().After(end) {
			fail("no message for 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: consumer KEY")
	}
	key, err := strconv.ParseUint(os.Args[1], 0, 32)
	if err != nil {
		fail("bad key: %v", err)
	}
	id, _, errno := syscall.Syscall(syscall.SYS_MSGGET, uintptr(key), 0, 0)
	if errno != 0 {
		fail("msgget: %v", errno)
	}

	buf := make([]byte, 8+8192)
	for {
		kind, text := receive(int(id), buf)
		switch kind {
		case 1:
			var s sample
			if err := json.Unmarshal(text, &s); err != nil {
				fail("sample: %v", err)
			}
			fmt.Printf("[Go consumer]     sample sensor=%d celsius=%.2f\n",
				s.Sensor, s.Celsius)
		case 2:
			var a alert
			if err := json.Unmarshal(text, &a); err != nil {
				fail("alert: %v", err)
			}
			fmt.Printf("[Go consumer]     ALERT  sensor=%d celsius=%.2f\n",
				a.Sensor, a.Celsius)
		case 3:
			var d done
			if err := json.Unmarshal(text, &d); err != nil {
				fail("summary: %v", err)
			}
			fmt.Printf("[Go consumer]     done   readings=%d alerts=%d "+
				"mean=%.2f\n", d.Readings, d.Alerts, d.MeanCelsius)
			return
		default:
			fail("unexpected message type %d", kind)
		}
	}
}
