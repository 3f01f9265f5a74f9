package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this package run the real binary where a signal or a crash
// is part of the test, and run() in-process elsewhere.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds cmd/farebox once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "farebox-bin-")
		if buildErr != nil {
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binPath = filepath.Join(binDir, "farebox")
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

const testToken = "fba_test_token_0123456789abcdefghijk"

// proc is a farebox serve process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe starts the binary on a free port over dataDir and waits for
// its "listening on" line.
func startServe(t *testing.T, dataDir string, env ...string) *proc {
	t.Helper()
	return startServeArgs(t, []string{"--data-dir", dataDir}, env...)
}

// startServeArgs starts serve on a free port with args.
func startServeArgs(t *testing.T, args []string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "FAREBOX_ADMIN_TOKEN="+testToken)
	cmd.Env = append(cmd.Env, env...)
	p := &proc{t: t, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.stdout.Write([]byte(sc.Text() + "\n"))
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				<-p.exited
				t.Fatalf("serve exited before listening: %v\nstdout: %s\nstderr: %s", p.err, p.stdout, p.stderr)
			}
			if u, found := strings.CutPrefix(l, "listening on "); found {
				p.url = u
				return p
			}
		case <-deadline:
			t.Fatalf("serve did not start within 30s\nstdout: %s\nstderr: %s", p.stdout, p.stderr)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("serve did not exit\nstderr: %s", p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// runVerify runs `farebox ledger verify` on dataDir and returns its exit
// code and output.
func runVerify(t *testing.T, dataDir string) (int, string) {
	t.Helper()
	return runVerifyArgs(t, "--data-dir", dataDir)
}

// runVerifyArgs runs `farebox ledger verify` with args.
func runVerifyArgs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"ledger", "verify"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// client speaks to a server with the admin token.
type client struct {
	base string
	http *http.Client
}

func newClient(base string) *client {
	return &client{base: base, http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}}
}

// call sends a JSON request; it returns the status and decoded body, or an
// error when no answer came (the server died).
func (c *client) call(ctx context.Context, method, path, body, key string) (int, map[string]any, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return 0, nil, fmt.Errorf("%s %s: %d %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, m, nil
}

// must is call for requests that must succeed with status want.
func (c *client) must(t *testing.T, method, path, body, key string, want int) map[string]any {
	t.Helper()
	st, m, err := c.call(context.Background(), method, path, body, key)
	if err != nil {
		t.Fatal(err)
	}
	if st != want {
		t.Fatalf("%s %s: %d, want %d: %v", method, path, st, want, m)
	}
	return m
}
