# The code-interpreter driver: the main program of every code-interpreter sandbox.
#
# It runs inside the session's sandbox (own uid, namespaces, cgroup; the working directory is a
# private tmpfs) and answers Hangar over one TCP port on the sandbox's own loopback, one JSON
# object per line each way: {"id": n, "tool": "<ToolName>", "arguments": {...}} in,
# {"id": n, "result": <CodeInterpreterResult>} or {"id": n, "error": {"kind", "message"}} out.
#
# Python code runs in a separate long-lived *kernel* process (persistent globals, like a Jupyter
# kernel), so user code that loops, crashes the interpreter (os._exit, segfault) or is OOM-killed
# takes down only the kernel: the driver reports it and starts a fresh one, and the session
# stays usable. Everything else (commands, files, tasks) runs in the driver itself.
#
# Standard library only: the sandbox sees the host's system Python read-only.

import ast
import base64
import errno
import io
import json
import linecache
import mimetypes
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid

WORKDIR = os.environ.get("HANGAR_CI_WORKDIR", "/workspace")
PORT = int(os.environ.get("HANGAR_CI_PORT", "9700"))
OUTPUT_CAP = int(os.environ.get("HANGAR_CI_OUTPUT_CAP", str(1 << 20)))
CALL_TIMEOUT = float(os.environ.get("HANGAR_CI_CALL_TIMEOUT", "60"))
READ_CAP = int(os.environ.get("HANGAR_CI_READ_CAP", str(8 << 20)))
MAX_TASKS = 64
MAX_LISTING = 10000

# TypeScript without deno: the TypeScript compiler as a Node.js module (Debian's node-typescript
# installs it under /usr/share/nodejs; npm's global typescript under .../lib/node_modules),
# found through NODE_PATH by a small Node runner that transpiles each cell to CommonJS.
TS_MODULE_DIRS = ("/usr/share/nodejs", "/usr/lib/nodejs", "/usr/lib/node_modules",
                  "/usr/local/lib/node_modules")
TS_MISSING_EXIT = 78
TS_MISSING = ("TypeScript cannot run on this Hangar host: neither the deno runtime nor Node.js with "
              "the TypeScript compiler module is installed. Install deno, or Node.js and its "
              "'typescript' module (Debian: apt-get install node-typescript; npm: npm install -g "
              "typescript).")
TS_RUNNER = r"""'use strict';
// node ts-runner.cjs <cell.ts> <cell.cjs>: transpiles one cell to CommonJS, or reports its
// syntax errors on stderr (exit 1). Exits %(missing)d when the typescript module is not found.
const fs = require('fs');
const path = require('path');
function findTypeScript() {
  try { return require.resolve('typescript'); } catch (e) {}
  for (const dir of (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)) {
    try { return require.resolve(path.join(dir, 'typescript')); } catch (e) {}
  }
  return null;
}
const where = findTypeScript();
if (!where) process.exit(%(missing)d);
const ts = require(where);
const [src, out] = process.argv.slice(2);
const result = ts.transpileModule(fs.readFileSync(src, 'utf8'), {
  fileName: 'cell.ts',
  reportDiagnostics: true,
  compilerOptions: {
    module: ts.ModuleKind.CommonJS,
    target: ts.ScriptTarget.ES2022 !== undefined ? ts.ScriptTarget.ES2022 : ts.ScriptTarget.ES2020,
    esModuleInterop: true,
    inlineSourceMap: true,
    inlineSources: true,
  },
});
const errors = (result.diagnostics || []).filter((d) => d.category === ts.DiagnosticCategory.Error);
if (errors.length) {
  process.stderr.write(ts.formatDiagnostics(errors, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => '\n',
  }));
  process.exit(1);
}
fs.writeFileSync(out, result.outputText);
""" % {"missing": TS_MISSING_EXIT}


def truncation_marker(dropped):
    return "\n[... output truncated: %d more bytes not shown ...]\n" % dropped


class Bounded:
    """Keeps the first OUTPUT_CAP bytes of a stream and counts the rest."""

    def __init__(self, cap=OUTPUT_CAP):
        self.cap = cap
        self.parts = []
        self.size = 0
        self.dropped = 0
        self.lock = threading.Lock()

    def add(self, data):
        with self.lock:
            room = self.cap - self.size
            if room > 0:
                keep = data[:room]
                self.parts.append(keep)
                self.size += len(keep)
                self.dropped += len(data) - len(keep)
            else:
                self.dropped += len(data)

    def text(self):
        with self.lock:
            s = b"".join(self.parts).decode("utf-8", "replace")
            if self.dropped:
                s += truncation_marker(self.dropped)
            return s


# ----------------------------------------------------------------------------------------------
# The kernel (a child process).


class Capture:
    """sys.stdout / sys.stderr of the kernel while a cell runs (bounded)."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self):
        self.buf = Bounded()

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        self.buf.add(s.encode("utf-8", "replace"))
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def fileno(self):
        raise io.UnsupportedOperation("captured stream has no file descriptor")

    @property
    def closed(self):
        return False


def fresh_namespace():
    return {"__name__": "__main__", "__builtins__": __builtins__}


def format_exception(exc, cell_file):
    # Drop the kernel's own frames: the traceback starts at the user's cell, as in Jupyter.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def run_cell(code, ns, count):
    name = "Cell In[%d]" % count
    lines = code.splitlines(True)
    linecache.cache[name] = (len(code), None, lines, name)
    tree = ast.parse(code, filename=name, mode="exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, name, "exec"), ns)
    if last is not None:
        value = eval(compile(last, name, "eval"), ns)
        if value is not None:
            ns["_"] = value
            print(repr(value))


def kernel_main(rfd, wfd):
    os.chdir(WORKDIR)
    # When the session runs out of memory, the kernel (user code) should be what the OOM killer
    # picks, not the driver: the driver then reports it and starts a fresh kernel.
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    kernel_pid = os.getpid()
    # Like a Jupyter kernel, what subprocesses write to the kernel's own stdout/stderr is not
    # part of a cell's output.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    rf = os.fdopen(rfd, "r", encoding="utf-8")
    wf = os.fdopen(wfd, "w", encoding="utf-8")
    real_out, real_err = sys.stdout, sys.stderr
    ns = fresh_namespace()
    count = 0
    sys.argv = [""]
    sys.path[0] = WORKDIR  # the cell's modules, not the driver's directory
    for line in rf:
        req = json.loads(line)
        if req.get("clear"):
            ns = fresh_namespace()
            count = 0
        count += 1
        out, err = Capture(), Capture()
        sys.stdout, sys.stderr = out, err
        t0 = time.perf_counter()
        ok = True
        try:
            run_cell(req["code"], ns, count)
        except SystemExit as e:
            ok = e.code in (None, 0)
            if not ok:
                err.write(format_exception(e, None))
        except BaseException as e:  # KeyboardInterrupt included: that is the timeout's interrupt
            ok = False
            err.write(format_exception(e, None))
        finally:
            if os.getpid() != kernel_pid:
                # A process the cell forked (os.fork) ended up here: it must not answer on
                # the kernel's pipe.
                os._exit(1)
            sys.stdout, sys.stderr = real_out, real_err
        elapsed = time.perf_counter() - t0
        wf.write(json.dumps({"ok": ok, "stdout": out.buf.text(), "stderr": err.buf.text(),
                             "executionTime": elapsed}) + "\n")
        wf.flush()


# ----------------------------------------------------------------------------------------------
# The driver.


class ToolError(Exception):
    """A problem with the tool's arguments: reported as the stream's validationException."""


def text_result(text, is_error=False, structured=None):
    r = {"content": [{"type": "text", "text": text}], "isError": is_error}
    if structured is not None:
        r["structuredContent"] = structured
    return r


def exec_result(stdout, stderr, exit_code, elapsed, extra_note=None):
    is_error = exit_code != 0
    text = stdout
    if stderr:
        text = (text + ("\n" if text and not text.endswith("\n") else "") + stderr) if text else stderr
    if extra_note:
        text = (text + "\n" if text else "") + extra_note
    return {
        "content": [{"type": "text", "text": text}],
        "structuredContent": {"stdout": stdout, "stderr": stderr if not extra_note else (stderr + ("\n" if stderr else "") + extra_note),
                              "exitCode": exit_code, "executionTime": round(elapsed, 6)},
        "isError": is_error,
    }


class Kernel:
    """The kernel process and its two pipes. Reading the answer uses select() rather than a
    helper thread: when a cell has used up the session's process limit (a fork bomb), the
    driver must still be able to wait for, interrupt and replace the kernel."""

    def __init__(self):
        self.proc = None
        self.rfd = None
        self.rbuf = b""
        self.wf = None
        self.start()

    def start(self):
        to_kernel_r, to_kernel_w = os.pipe()
        from_kernel_r, from_kernel_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", __file__, "--kernel", str(to_kernel_r), str(from_kernel_w)],
                pass_fds=(to_kernel_r, from_kernel_w), stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=WORKDIR)
        finally:
            os.close(to_kernel_r)
            os.close(from_kernel_w)
        self.wf = os.fdopen(to_kernel_w, "w", encoding="utf-8")
        self.rfd = from_kernel_r
        self.rbuf = b""

    def kill(self):
        if self.proc is not None:
            killpg(self.proc.pid)
            try:
                self.proc.wait(timeout=5)
            except Exception:
                pass
        for close in (lambda: self.wf.close(), lambda: os.close(self.rfd)):
            try:
                close()
            except Exception:
                pass
        self.proc = None

    def restart(self):
        self.kill()
        self.start()

    def read_line(self, timeout):
        """The kernel's next answer line; None at the timeout, b"" when the kernel is gone."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.rbuf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.rfd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.rfd, 1 << 20)
            if not chunk:
                return b""
            self.rbuf += chunk
        line, _, self.rbuf = self.rbuf.partition(b"\n")
        return line

    def run(self, code, clear, timeout):
        if self.proc is None or self.proc.poll() is not None:
            self.restart()
        t0 = time.perf_counter()
        try:
            self.wf.write(json.dumps({"code": code, "clear": clear}) + "\n")
            self.wf.flush()
        except OSError:
            self.restart()
            return exec_result("", "", 1, 0.0, "The Python kernel had died; a fresh one was started and the context was reset. Run the code again.")
        line = self.read_line(timeout)
        if line is None:
            # Per-call limit: interrupt (KeyboardInterrupt keeps the context), then kill.
            try:
                os.kill(self.proc.pid, signal.SIGINT)
            except OSError:
                pass
            line = self.read_line(2.0)
            if not line:
                self.restart()
                return exec_result("", "", 1, time.perf_counter() - t0,
                                   "Execution exceeded the per-call limit of %gs and did not stop when interrupted; the Python kernel was restarted and the context was reset." % timeout)
            r = json.loads(line)
            return exec_result(r["stdout"], r["stderr"], 1, r["executionTime"],
                               "Execution exceeded the per-call limit of %gs and was interrupted." % timeout)
        if not line:
            code_ = self.proc.wait()
            how = ("killed by signal %d" % -code_) if code_ < 0 else ("exit code %d" % code_)
            if code_ == -signal.SIGKILL:
                how += " (likely out of memory)"
            self.restart()
            return exec_result("", "", 1, time.perf_counter() - t0,
                               "The Python kernel died (%s); a fresh one was started and the context was reset." % how)
        r = json.loads(line)
        return exec_result(r["stdout"], r["stderr"], 0 if r["ok"] else 1, r["executionTime"])


def run_process(argv, timeout, stdin_data=None, env=None, limit=None):
    """Run argv in its own process group; bounded stdout/stderr; killed after `timeout`
    seconds (reported as the per-call `limit`, by default `timeout`)."""
    t0 = time.perf_counter()
    try:
        p = subprocess.Popen(argv, cwd=WORKDIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True, env=env)
    except OSError as e:
        if e.errno == errno.EAGAIN:
            return exec_result("", "", 127, time.perf_counter() - t0,
                               "The session is at its process limit (%s); try again when its processes have ended." % e)
        return exec_result("", str(e), 127, time.perf_counter() - t0)
    out, err = Bounded(), Bounded()
    readers = [threading.Thread(target=pump, args=(p.stdout, out), daemon=True),
               threading.Thread(target=pump, args=(p.stderr, err), daemon=True)]
    try:
        for r in readers:
            r.start()
    except RuntimeError:
        killpg(p.pid)
        p.wait()
        raise
    note = None
    try:
        code = p.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
        note = "Command exceeded the per-call limit of %gs and was killed." % (limit or timeout)
    # Whatever the command left running in its process group ends with it (a shell fork
    # bomb, a forgotten `&`); long-running work belongs in startCommandExecution.
    killpg(p.pid)
    if code is None:
        code = p.wait()
    for r in readers:
        r.join(0.5)
    if code < 0:
        code = 128 - code
    return exec_result(out.text(), err.text(), code if note is None else (code or 1),
                       time.perf_counter() - t0, note)


def pump(stream, sink):
    try:
        while True:
            data = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not data:
                break
            sink.add(data)
    except Exception:
        pass
    finally:
        try:
            stream.close()
        except Exception:
            pass


def killpg(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


class Task:
    def __init__(self, command):
        self.id = uuid.uuid4().hex
        self.t0 = time.perf_counter()
        self.out, self.err = Bounded(), Bounded()
        self.canceled = False
        self.end = None
        self.proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=WORKDIR,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=pump, args=(stream, sink), daemon=True).start()

    def status(self):
        code = self.proc.poll()
        if code is None:
            return "working", None
        if self.end is None:
            self.end = time.perf_counter()
        if code < 0:
            code = 128 - code
        if self.canceled:
            return "canceled", code
        return ("completed" if code == 0 else "failed"), code

    def result(self):
        status, code = self.status()
        elapsed = (self.end or time.perf_counter()) - self.t0
        structured = {"taskId": self.id, "taskStatus": status, "stdout": self.out.text(),
                      "stderr": self.err.text(), "executionTime": round(elapsed, 6)}
        if code is not None:
            structured["exitCode"] = code
        text = "Task %s is %s." % (self.id, status)
        if structured["stdout"]:
            text += "\n" + structured["stdout"]
        return {"content": [{"type": "text", "text": text}], "structuredContent": structured,
                "isError": status == "failed"}


class PathError(Exception):
    pass


def resolve(path, must_exist=False):
    """A path inside WORKDIR. Relative paths are relative to it; `file://` URIs and absolute
    paths name the same tree (`file:///a.txt` is `a.txt`). Nothing may leave it, not even
    through `..` or a symlink."""
    if not isinstance(path, str):
        raise PathError("A path must be a string.")
    p = path
    if p.startswith("file://"):
        p = p[len("file://"):]
    if os.path.isabs(p):
        if p == WORKDIR or p.startswith(WORKDIR + "/"):
            p = os.path.relpath(p, WORKDIR)
        else:
            p = p.lstrip("/")
    full = os.path.realpath(os.path.join(WORKDIR, p))
    if full != WORKDIR and not full.startswith(WORKDIR + "/"):
        raise PathError("Path %r is outside the session's working directory." % path)
    if must_exist and not os.path.lexists(full):
        raise PathError("No such file or directory: %r" % path)
    return full


def rel_uri(full):
    rel = os.path.relpath(full, WORKDIR)
    return "file:///" + ("" if rel == "." else rel)


def mime_of(name):
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def needs(args, key, kind):
    v = args.get(key)
    if v is None or (kind is str and not isinstance(v, str)) or (kind is list and not isinstance(v, list)):
        raise ToolError("The %s tool requires the argument '%s'." % (CURRENT[0], key))
    if kind is list and not v:
        raise ToolError("The argument '%s' of %s must not be empty." % (key, CURRENT[0]))
    return v


CURRENT = [""]


class Driver:
    def __init__(self):
        self.kernel = Kernel()
        self.tasks = {}
        self.lock = threading.Lock()

    def handle(self, tool, args, limits):
        CURRENT[0] = tool
        timeout = float(limits.get("callTimeout", CALL_TIMEOUT))
        fn = getattr(self, "tool_" + tool, None)
        if fn is None:
            raise ToolError("Unknown tool %r." % tool)
        return fn(args, timeout)

    def tool_executeCode(self, args, timeout):
        code = needs(args, "code", str)
        language = args.get("language") or "python"
        runtime = args.get("runtime")
        if language == "python":
            if runtime not in (None, "python"):
                raise ToolError("Runtime %r cannot run python code; use 'python'." % runtime)
            with self.lock:
                return self.kernel.run(code, bool(args.get("clearContext")), timeout)
        if language in ("javascript", "typescript"):
            if runtime == "python":
                raise ToolError("Runtime 'python' cannot run %s code; use 'nodejs' or 'deno'." % language)
            deno = shutil.which("deno")
            # TypeScript runs on deno where it is installed, else (and always with runtime
            # 'nodejs') transpiled by the TypeScript module and run on Node.js.
            if runtime == "deno" or (language == "typescript" and runtime is None and deno):
                if not deno:
                    return exec_result("", "", 1, 0.0, "The deno runtime is not installed on this Hangar host, so %s cannot run with it; use runtime 'nodejs'." % language)
                ext = ".ts" if language == "typescript" else ".js"
                path = self.script(code, ext)
                return run_process([deno, "run", "--quiet", "--allow-read=.", "--allow-write=.", path], timeout)
            node = shutil.which("node")
            if not node:
                if language == "typescript":
                    return exec_result("", "", 1, 0.0, TS_MISSING)
                return exec_result("", "", 1, 0.0, "Node.js is not installed on this Hangar host.")
            if language == "typescript":
                return self.run_typescript(node, code, timeout)
            path = self.script(code, ".cjs")
            return run_process([node, path], timeout)
        raise ToolError("Unsupported language %r." % language)

    def run_typescript(self, node, code, timeout):
        """Transpile the cell with the TypeScript module (syntax errors are an isError result),
        then run the CommonJS output like a javascript cell, within the same per-call limit."""
        t0 = time.perf_counter()
        runner = os.path.join(self.script_dir(), "ts-runner.cjs")
        if not os.path.exists(runner):
            tmp = runner + ".%d" % os.getpid()
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(TS_RUNNER)
            os.replace(tmp, runner)
        src = self.script(code, ".ts")
        out = src[:-len(".ts")] + ".cjs"
        env = dict(os.environ)
        env["NODE_PATH"] = os.pathsep.join([p for p in env.get("NODE_PATH", "").split(os.pathsep) if p]
                                           + [d for d in TS_MODULE_DIRS if os.path.isdir(d)])
        r = run_process([node, runner, src, out], timeout, env=env)
        spent = time.perf_counter() - t0
        sc = r["structuredContent"]
        if sc["exitCode"] == TS_MISSING_EXIT:
            return exec_result("", "", 1, spent, TS_MISSING)
        if r["isError"]:
            return r
        r = run_process([node, "--enable-source-maps", out], max(timeout - spent, 0.01), limit=timeout)
        r["structuredContent"]["executionTime"] = round(time.perf_counter() - t0, 6)
        return r

    def script_dir(self):
        # Scripts go to the private /tmp, not the working directory the user lists.
        d = "/tmp/hangar-scripts"
        os.makedirs(d, exist_ok=True)
        return d

    def script(self, code, ext):
        path = os.path.join(self.script_dir(), "cell-%s%s" % (uuid.uuid4().hex[:12], ext))
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        return path

    def tool_executeCommand(self, args, timeout):
        return run_process(["/bin/sh", "-c", needs(args, "command", str)], timeout)

    def tool_startCommandExecution(self, args, timeout):
        command = needs(args, "command", str)
        live = [t for t in self.tasks.values() if t.proc.poll() is None]
        if len(live) >= MAX_TASKS:
            return text_result("Too many running tasks (%d); stop some first." % len(live), True)
        task = Task(command)
        self.tasks[task.id] = task
        return {"content": [{"type": "text", "text": "Task %s started." % task.id}],
                "structuredContent": {"taskId": task.id, "taskStatus": "working"},
                "isError": False}

    def task(self, args):
        tid = needs(args, "taskId", str)
        task = self.tasks.get(tid)
        if task is None:
            raise ToolError("No task with id %r in this session." % tid)
        return task

    def tool_getTask(self, args, timeout):
        return self.task(args).result()

    def tool_stopTask(self, args, timeout):
        task = self.task(args)
        if task.proc.poll() is None:
            task.canceled = True
            killpg(task.proc.pid)
            try:
                # SIGKILL cannot be ignored; the wait only covers a very busy host.
                task.proc.wait(30)
            except Exception:
                pass
        return task.result()

    def tool_writeFiles(self, args, timeout):
        content = needs(args, "content", list)
        # Every path and blob is checked before anything is written, so a bad block leaves
        # the working directory untouched (the SDK documents the call as all-or-nothing).
        planned = []
        for block in content:
            if not isinstance(block, dict) or not isinstance(block.get("path"), str):
                raise ToolError("Every content block of writeFiles needs a 'path'.")
            try:
                full = resolve(block["path"])
                if full == WORKDIR or os.path.isdir(full):
                    raise PathError("%r is a directory." % block["path"])
                if block.get("blob") is not None:
                    data = base64.b64decode(block["blob"], validate=True)
                else:
                    data = (block.get("text") or "").encode("utf-8")
            except (PathError, ValueError) as e:
                return text_result("Failed to write %s: %s (no file was written)" % (block["path"], e), True)
            planned.append((block["path"], full, data))
        written = 0
        for path, full, data in planned:
            try:
                os.makedirs(os.path.dirname(full), exist_ok=True)
                tmp = full + ".hangar-tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, full)
                written += 1
            except OSError as e:
                return text_result("Failed to write %s: %s (wrote %d of %d files)" % (
                    path, e, written, len(planned)), True)
        return text_result("Successfully wrote all %d files" % written)

    def tool_readFiles(self, args, timeout):
        paths = needs(args, "paths", list)
        blocks, total = [], 0
        for path in paths:
            try:
                full = resolve(path, must_exist=True)
                if os.path.isdir(full):
                    raise PathError("%r is a directory." % path)
                size = os.path.getsize(full)
                if total + size > READ_CAP:
                    raise PathError("reading %r would exceed the %d-byte limit of one readFiles call" % (path, READ_CAP))
                with open(full, "rb") as f:
                    data = f.read()
                total += len(data)
            except (PathError, OSError) as e:
                return text_result("Failed to read %s: %s" % (path, e), True)
            res = {"uri": rel_uri(full), "mimeType": mime_of(full)}
            try:
                # NUL bytes mean binary even when the bytes happen to be valid UTF-8.
                if b"\0" in data:
                    raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
                res["text"] = data.decode("utf-8")
                res["type"] = "text"
            except UnicodeDecodeError:
                res["blob"] = base64.b64encode(data).decode("ascii")
                res["type"] = "blob"
            blocks.append({"type": "resource", "resource": res})
        return {"content": blocks, "isError": False}

    def tool_listFiles(self, args, timeout):
        path = args.get("directoryPath")
        if path is None:
            path = args.get("path") or ""
        try:
            full = resolve(path, must_exist=True)
            if not os.path.isdir(full):
                raise PathError("%r is not a directory." % path)
            names = sorted(os.listdir(full))
        except (PathError, OSError) as e:
            return text_result("Failed to list %s: %s" % (path or ".", e), True)
        blocks = []
        shown = names[:MAX_LISTING]
        for name in shown:
            p = os.path.join(full, name)
            b = {"type": "resource_link", "uri": rel_uri(p), "name": name}
            if os.path.isdir(p) and not os.path.islink(p):
                b["description"] = "Directory"
            else:
                b["description"] = "File"
                b["mimeType"] = mime_of(name)
                try:
                    b["size"] = os.lstat(p).st_size
                except OSError:
                    pass
            blocks.append(b)
        if len(names) > len(shown):
            # One answer is one event-stream frame (at most 16 MiB): huge listings are cut.
            blocks.append({"type": "text", "text": "[... listing truncated: %d more entries not shown ...]" % (len(names) - len(shown))})
        return {"content": blocks, "isError": False}

    def tool_removeFiles(self, args, timeout):
        paths = needs(args, "paths", list)
        removed = 0
        for path in paths:
            try:
                full = resolve(path, must_exist=True)
                if full == WORKDIR:
                    raise PathError("Cannot remove the working directory itself.")
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                else:
                    os.unlink(full)
                removed += 1
            except (PathError, OSError) as e:
                return text_result("Failed to remove %s: %s (removed %d of %d)" % (path, e, removed, len(paths)), True)
        return text_result("Successfully removed all %d files" % removed)


def serve_connection(driver, conn):
    rf = conn.makefile("r", encoding="utf-8", newline="\n")
    wf = conn.makefile("w", encoding="utf-8", newline="\n")
    for line in rf:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        rid = req.get("id")
        try:
            if req.get("tool") == "ping":
                answer = {"id": rid, "pong": True}
            else:
                result = driver.handle(req.get("tool", ""), req.get("arguments") or {}, req.get("limits") or {})
                answer = {"id": rid, "result": result}
        except ToolError as e:
            answer = {"id": rid, "error": {"kind": "validation", "message": str(e)}}
        except (RuntimeError, BlockingIOError) as e:
            # Thread or process creation failed: the session is at its process limit.
            answer = {"id": rid, "result": text_result(
                "The session is at its process limit (%s); stop background work or the session." % e, True)}
        except Exception as e:
            answer = {"id": rid, "error": {"kind": "internal", "message": "%s: %s" % (type(e).__name__, e)}}
        wf.write(json.dumps(answer) + "\n")
        wf.flush()


def main():
    os.makedirs(WORKDIR, exist_ok=True)
    os.chdir(WORKDIR)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", PORT))
    srv.listen(8)
    driver = Driver()
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            threading.Thread(target=serve_connection, args=(driver, conn), daemon=True).start()
        except RuntimeError:
            conn.close()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--kernel":
        kernel_main(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
