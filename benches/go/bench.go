// Go peer for the coact W1-W4 workloads; run by the `workloads` binary through `go run`.
//
//	go run bench.go -procs 1 -runs 3 -only W1,W2,W3,W4 [-quick]
//
// Prints one line per workload: `RESULT <id> <n> <ns/op run 1> <ns/op run 2> ...`.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

const batch = 1000

func w1(n int) time.Duration {
	ch := make(chan uint64, 1)
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			ch <- uint64(i)
		}
		close(ch)
	}()
	var sum uint64
	for v := range ch {
		sum += v
	}
	el := time.Since(start)
	if sum != uint64(n)*uint64(n-1)/2 {
		panic("W1: wrong sum")
	}
	return el
}

func w2(n int) time.Duration {
	c0, c1, c2 := make(chan uint64, 1), make(chan uint64, 1), make(chan uint64, 1)
	c0 <- 0
	c1 <- 1
	c2 <- 2
	start := time.Now()
	for i := 0; i < n; i++ {
		select {
		case v := <-c0:
			c0 <- v
		case v := <-c1:
			c1 <- v
		case v := <-c2:
			c2 <- v
		}
	}
	return time.Since(start)
}

func w3(n int) time.Duration {
	req, rep := make(chan uint64, 1), make(chan uint64, 1)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		for v := range req {
			rep <- v + 1
		}
		close(done)
	}()
	for i := 0; i < n; i++ {
		req <- uint64(i)
		if <-rep != uint64(i)+1 {
			panic("W3: wrong reply")
		}
	}
	close(req)
	<-done
	return time.Since(start)
}

func w4(n int) time.Duration {
	ch := make(chan int, batch)
	start := time.Now()
	for b := 0; b < n/batch; b++ {
		for j := 0; j < batch; j++ {
			go func() { ch <- 1 }()
		}
		got := 0
		for j := 0; j < batch; j++ {
			got += <-ch
		}
		if got != batch {
			panic("W4: wrong count")
		}
	}
	return time.Since(start)
}

func main() {
	procs := flag.Int("procs", 1, "GOMAXPROCS")
	runs := flag.Int("runs", 3, "runs per workload")
	quick := flag.Bool("quick", false, "divide counts by 10")
	only := flag.String("only", "W1,W2,W3,W4", "comma-separated workload ids")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)

	type workload struct {
		id string
		n  int
		f  func(int) time.Duration
	}
	all := []workload{
		{"W1", 10_000_000, w1},
		{"W2", 10_000_000, w2},
		{"W3", 1_000_000, w3},
		{"W4", 1_000_000, w4},
	}
	wanted := map[string]bool{}
	for _, id := range strings.Split(*only, ",") {
		wanted[strings.TrimSpace(id)] = true
	}
	for _, w := range all {
		if !wanted[w.id] {
			continue
		}
		n := w.n
		if *quick {
			n /= 10
		}
		fmt.Printf("RESULT %s %d", w.id, n)
		for r := 0; r < *runs; r++ {
			runtime.GC()
			el := w.f(n)
			fmt.Printf(" %.3f", float64(el.Nanoseconds())/float64(n))
		}
		fmt.Println()
	}
	os.Stdout.Sync()
}
