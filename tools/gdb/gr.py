# tools/gdb/gr.py: gdb commands for gr's tasks. They read the program's memory only, so they work
# on a live process and on a core file alike.
#
#   (gdb) source /path/to/gr/tools/gdb/gr.py
#   (gdb) gr tasks              every task of every scheduler, one line each, as gr::dump prints them
#   (gdb) gr bt 3               the backtrace of task #3, suspended or running
#   (gdb) gr bt 3 full          extra words go to gdb's `bt` (full, -frame-arguments all, a count...)
#   (gdb) gr bt 2:3             task #3 of the second scheduler listed by `gr tasks` (threads)
#   (gdb) gr bt all             every unfinished task's line and backtrace
#   (gdb) gr dump               the same as `gr tasks`
#
# Loading it automatically: put `source /path/to/gr/tools/gdb/gr.py` in ~/.gdbinit; or copy it
# next to your program as <program>-gdb.py and allow that directory once in ~/.gdbinit with
# `add-auto-load-safe-path /path/to/dir` (gdb's auto-load of objfile scripts).
#
# Needs gr's sched library built with debug info (-g: the Debug and RelWithDebInfo builds; your
# program's own frames need -g too to show names and lines), libstdc++, and x86_64.
#
# How it finds tasks: the C symbol `gr_debug_schedulers` heads the list of live schedulers
# (sched_state::debug_next); each scheduler links every task through task_ctl::all_next starting
# at its main task. How `gr bt` unwinds a suspended task: the task's greenlet saved its registers
# on its own stack in Boost.Context's jump_fcontext, and greenlet::ctx_ points at them. While `gr
# bt` runs `bt`, a Python unwinder says that the newest frame's caller is the frame that called
# jump_fcontext, with the registers read from that save area; gdb's own unwinders take it from
# there. The first (real) frame is dropped from the output and the rest renumbered from #0. No
# register of the program is written, which is why it works on a core file.
#
# Layout of the save area at ctx (x86_64 SysV, Boost 1.81's jump_x86_64_sysv_elf_gas.S):
#   +0x00 mxcsr, x87 control word   +0x08 (unused)   +0x10 r12  +0x18 r13  +0x20 r14  +0x28 r15
#   +0x30 rbx  +0x38 rbp  +0x40 return address (rip). greenlet.cpp enters jump_fcontext by push + jmp
#   after stepping over the 128-byte red zone, so the stack pointer the compiler expects at the
#   return address is ctx + 0x48 + 128. A greenlet suspended to resume straight into its caller
#   (greenlet::resume_, see greenlet.cpp) has other layouts: after yield_transfer the return address
#   at +0x40 is its caller's, whose stack pointer is ctx + 0x48; after switch_to's direct path +0x40
#   holds gr_direct_resume, a padding word follows, and the caller's return address is at +0x50,
#   with the stack pointer ctx + 0x58.

import re
import struct

import gdb
import gdb.unwinder

_CTX_REGS = (("r12", 0x10), ("r13", 0x18), ("r14", 0x20), ("r15", 0x28), ("rbx", 0x30), ("rbp", 0x38))
# (offset of the return address, stack pointer after it) by greenlet::resume_
_CTX_LAYOUT = {0: (0x40, 0x48 + 128), 1: (0x40, 0x48), 2: (0x50, 0x58)}

_STATES = {0: "runnable", 1: "running", 2: "blocked", 3: "done"}
_STATE_DONE = 3
_NPOS = (1 << 64) - 1
_PAGE = 4096


# ---- reading memory ------------------------------------------------------------------------------


def _inferior():
    return gdb.selected_inferior()


def _read(addr, size):
    return bytes(_inferior().read_memory(addr, size))


def _u64(addr):
    return struct.unpack("<Q", _read(addr, 8))[0]


def _cstr(v):
    """A `const char*` value as a Python string ("" for null)."""
    addr = int(v)
    if addr == 0:
        return ""
    try:
        return v.string(errors="replace")
    except gdb.MemoryError:
        return "<unreadable 0x%x>" % addr


def _std_string(v):
    """A libstdc++ std::string value as a Python string."""
    try:
        n = int(v["_M_string_length"])
        p = int(v["_M_dataplus"]["_M_p"])
    except gdb.error:
        return str(v)  # not libstdc++'s layout: whatever a pretty printer makes of it
    if n == 0:
        return ""
    return _read(p, min(n, 4096)).decode("utf-8", errors="replace")


def _ns(time_point):
    """A std::chrono::steady_clock::time_point (libstdc++) as nanoseconds."""
    return int(time_point["__d"]["__r"])


_offsets = {}


def _offset(type_name, field):
    """The byte offset of `field` in `type_name` (from the debug info)."""
    key = (type_name, field)
    if key not in _offsets:
        for f in gdb.lookup_type(type_name).strip_typedefs().fields():
            if f.name == field:
                _offsets[key] = f.bitpos // 8
                break
        else:
            raise gdb.GdbError("gr: %s has no field %s: gr.py does not match this build of gr" % (type_name, field))
    return _offsets[key]


class _Greenlet:
    """What gr.py needs of a gr::greenlet, read at its fields' offsets: dereferencing the pointer
    would make gdb look up the dynamic type (a task_frame<lambda>) and warn that it cannot."""

    ACTIVE = 1  # greenlet::state::active: running, or suspended in a switch with ctx_ valid

    def __init__(self, ptr):
        a = int(ptr)
        self.ctx = _u64(a + _offset("gr::greenlet", "ctx_"))
        resume = _read(a + _offset("gr::greenlet", "resume_"), 1)[0]
        if resume not in _CTX_LAYOUT:
            raise gdb.GdbError("gr: greenlet 0x%x has resume_ %d: gr.py does not match this build of gr" % (a, resume))
        self.rip_at, self.sp_after = _CTX_LAYOUT[resume]
        self.state = _read(a + _offset("gr::greenlet", "state_"), 1)[0]
        stk = a + _offset("gr::greenlet", "stack_")
        self.stack_base = _u64(stk + _offset("gr::stack", "base"))
        self.stack_size = _u64(stk + _offset("gr::stack", "size"))


# ---- the schedulers and their tasks ---------------------------------------------------------------


def _schedulers():
    try:
        head = gdb.parse_and_eval("gr_debug_schedulers")
    except gdb.error as e:
        raise gdb.GdbError(
            "gr: cannot read gr_debug_schedulers (%s). Is the program linked with gr's sched library, "
            "built with debug info (-g)?" % e
        )
    out = []
    seen = set()
    s = head
    while int(s) != 0 and int(s) not in seen:
        seen.add(int(s))
        out.append(s.dereference())
        s = s["debug_next"]
    out.reverse()  # registration order: the first scheduler made is #1
    return out


def _tasks(sched):
    t = sched["main"].address
    seen = set()
    while int(t) != 0 and int(t) not in seen:
        seen.add(int(t))
        yield t.dereference()
        t = t["all_next"]


def _gdb_thread(sched):
    lwp = int(sched["os_thread"])
    for th in _inferior().threads():
        if th.ptid[1] == lwp:
            return th
    return None


class _selection:
    """Restores the selected thread and frame when it goes out of scope."""

    def __enter__(self):
        self.thread = gdb.selected_thread()
        try:
            self.level = gdb.selected_frame().level()
        except gdb.error:
            self.level = None
        return self

    def __exit__(self, *exc):
        if self.thread is not None and self.thread.is_valid():
            self.thread.switch()
        if self.level:
            f = gdb.newest_frame()
            while f is not None and f.level() < self.level:
                f = f.older()
            if f is not None:
                f.select()
        return False


def _thread_sp(sched):
    """The stack pointer of the scheduler's thread (where its current task is), or None."""
    cur = sched["current"]
    if int(cur) == 0 or int(cur.dereference()["memory"]["size"]) == 0:
        return None  # the main task: no gr stack to measure
    th = _gdb_thread(sched)
    if th is None:
        return None
    with _selection():
        th.switch()
        return int(gdb.newest_frame().read_register("rsp"))


def _select_label(desc_ptr):
    """What a select waits on, computed from its select_desc as the library's describe_select()."""
    try:
        t = gdb.lookup_type("gr::detail::(anonymous namespace)::select_desc")
    except gdb.error:
        return ""
    d = desc_ptr.cast(t.pointer()).dereference()
    out = ""
    if int(d["name"]) != 0:
        name = _std_string(d["name"].dereference())
        if name:
            out = "'%s' " % name
    out += "over"
    n = int(d["n"])
    if n == 0:
        return out + " no cases (blocks forever)"
    chan_core = gdb.lookup_type("gr::detail::chan_core").pointer()
    for i in range(min(n, 64)):
        c = d["cases"][i]
        kind = int(c["ops"]["kind"])
        out += ", " if i else " "
        if kind in (0, 1):  # recv, send: every case object starts with its channel pointer
            ch = gdb.Value(_u64(int(c["obj"]))).cast(chan_core)
            name = _std_string(ch.dereference()["name_"])
            label = "channel '%s'" % name if name else "channel 0x%x" % int(ch)
            out += ("recv on " if kind == 0 else "send on ") + label
        elif kind == 2:
            out += "a timeout"
        elif kind == 3:
            out += "default"
        else:  # case_kind::nil: a case on a null channel pointer, switched off
            out += "a nil channel (never ready)"
    return out


def _task_label(t):
    """A task as gr::detail::task_label() names it."""
    if bool(t["is_main"]):
        return "the main task"
    name = _std_string(t["name"])
    return "task #%d '%s'" % (int(t["id"]), name) if name else "task #%d" % int(t["id"])


def _mutex_label(obj):
    """What a task waiting for a gr::mutex waits on, as gr::mutex::describe_lock_wait() words it."""
    m = obj.cast(gdb.lookup_type("gr::mutex").pointer()).dereference()
    name = _std_string(m["name_"])
    out = "mutex '%s'" % name if name else "mutex 0x%x" % int(obj)
    owner = m["owner_"]
    return out + " (held by %s)" % (_task_label(owner.dereference()) if int(owner) != 0 else "nobody")


def _describe_wait(w):
    """What a blocked task waits on, as gr::describe_wait() words it."""
    verb = _cstr(w["verb"])
    if not verb:
        return ""
    out = verb
    if int(w["describe"]) != 0:
        # Built by a function of the program at report time (a select, a mutex and its holder):
        # redo it from memory.
        kind = _cstr(w["kind"]) if int(w["kind"]) != 0 else ""
        try:
            if verb == "select":
                label = _select_label(w["object"])
            elif kind == "mutex":
                label = _mutex_label(w["object"])
            elif kind == "wait_group":
                wg = w["object"].cast(gdb.lookup_type("gr::wait_group").pointer()).dereference()
                name = _std_string(wg["name_"])
                label = ("wait_group '%s'" % name if name else "wait_group 0x%x" % int(w["object"])) + \
                    " (count %d)" % int(wg["count_"])
            else:
                label = ""
        except (gdb.error, gdb.MemoryError):
            label = ""
        if label:
            out += " " + label
        elif kind:
            out += " " + kind
    elif int(w["kind"]) != 0:
        kind = _cstr(w["kind"])
        out += " " + kind
        name = _std_string(w["name"].dereference()) if int(w["name"]) != 0 else ""
        if name:
            out += " '%s'" % name
        elif int(w["object"]) != 0:
            out += " 0x%x" % int(w["object"])
        if kind == "task" and int(w["object"]) != 0:
            other = w["object"].cast(gdb.lookup_type("gr::detail::task_ctl").pointer())
            out += " (#%d)" % int(other["id"])
    return out


def _peak(base, size, canary):
    """The deepest the stack at [base, base + size) has been used, in whole pages: from its lowest
    page holding a non-zero byte to its top (fresh stack memory is zero). gr::dump counts resident
    pages with mincore() instead, which a core file cannot answer; both stay as deep as a pooled
    stack ever went."""
    try:
        data = _read(base, size)
    except gdb.MemoryError:
        return None
    skip = 8 if canary else 0  # an unguarded or user stack's canary word sits at its lowest address
    rest = data[skip:]
    first = len(rest) - len(rest.lstrip(b"\0"))
    if first == len(rest):
        return 0
    return size - ((skip + first) // _PAGE) * _PAGE


def _task_line(sched, t, sp_of_running):
    tid = int(t["id"])
    name = _std_string(t["name"])
    line = "task #%d '%s'" % (tid, name) if name else "task #%d" % tid
    state = int(t["state"])
    line += ": " + _STATES.get(state, "state %d" % state)
    if state == 2:
        waiting = _describe_wait(t["waiting"].dereference()) if int(t["waiting"]) != 0 else ""
        if waiting:
            line += ", waits to " + waiting
    now = _ns(sched["last_now"])
    if int(t["timer_index"]) != _NPOS:
        left = (_ns(t["deadline"]) - now) / 1e6
        line += (" (deadline in %.3f ms)" % left) if left >= 0 else (" (deadline passed %.3f ms ago)" % -left)
    if bool(t["cancel_requested"]):
        line += ", cancelled"
    is_main = bool(t["is_main"])
    impl = t["spawned_at"]["_M_impl"]
    if not is_main and int(impl) != 0:
        f = _cstr(impl["_M_file_name"])
        if f:
            line += ", spawned at %s:%d" % (f, int(impl["_M_line"]))
    if not is_main:
        # The scheduler's last clock reading, not the time of the dump: a lower bound.
        line += ", age %.3f s" % ((now - _ns(t["created"])) / 1e9)
    line += ", switches %d" % int(t["switches"])
    mem = t["memory"]
    base, size = int(mem["base"]), int(mem["size"])
    if size and state != _STATE_DONE:
        gl = _Greenlet(t["gl"])
        top = gl.stack_base + gl.stack_size
        sp = None
        if int(sched["current"]) == int(t.address):
            sp = sp_of_running
        elif gl.state == _Greenlet.ACTIVE:  # not current: suspended in a switch
            sp = gl.ctx
        used = top - sp if sp is not None and sp <= top else 0
        canary = int(mem["origin"]) in (2, 3)  # unguarded, user
        peak = _peak(base, size, canary)
        line += ", stack %.1f KiB now, %s KiB peak of %d KiB" % (
            used / 1024.0,
            "?" if peak is None else str(peak // 1024),
            size // 1024,
        )
    elif size:
        line += ", stack 0.0 KiB now, 0 KiB peak of %d KiB" % (size // 1024)
    return line


def _sched_header(index, sched, count):
    lwp = int(sched["os_thread"])
    th = _gdb_thread(sched)
    where = "thread LWP %d" % lwp + (" (gdb thread %d)" % th.num if th else "")
    return "gr: scheduler %d on %s: %d task(s)" % (index, where, count)


def _find_task(spec):
    """(sched, task) for "ID" or "SCHED:ID"."""
    m = re.fullmatch(r"(?:(\d+):)?(\d+)", spec)
    if not m:
        raise gdb.GdbError("gr bt: expected a task id (as `gr tasks` lists them), or SCHEDULER:ID; got '%s'" % spec)
    scheds = _schedulers()
    if not scheds:
        raise gdb.GdbError("gr: no scheduler is alive in this program")
    tid = int(m.group(2))
    if m.group(1):
        k = int(m.group(1))
        if not 1 <= k <= len(scheds):
            raise gdb.GdbError("gr: there is no scheduler %d (there are %d)" % (k, len(scheds)))
        candidates = [scheds[k - 1]]
    else:
        # The selected thread's scheduler first, then the others in order.
        sel = gdb.selected_thread()
        lwp = sel.ptid[1] if sel is not None else None
        candidates = sorted(scheds, key=lambda s: int(s["os_thread"]) != lwp)
    for s in candidates:
        for t in _tasks(s):
            if int(t["id"]) == tid:
                return s, t
    raise gdb.GdbError("gr: no task #%d (see `gr tasks`)" % tid)


# ---- the unwinder behind `gr bt` ------------------------------------------------------------------


class _FrameId:
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class _TaskUnwinder(gdb.unwinder.Unwinder):
    """Inactive (returns None) except while `gr bt` runs: then the newest frame's caller is the
    frame suspended in jump_fcontext whose save area is at self.ctx."""

    def __init__(self):
        super().__init__("gr-task")
        self.ctx = None
        self.rip_at, self.sp_after = _CTX_LAYOUT[0]

    def __call__(self, pending_frame):
        if self.ctx is None or pending_frame.level() != 0:
            return None
        ctx = self.ctx
        pc = pending_frame.read_register("rip")
        sp = pending_frame.read_register("rsp")
        # The frame's id names the task's stack, below the frames to come: gdb stops a backtrace
        # whose next frame looks "inner" (below) the one before, and the task's stack may lie
        # anywhere relative to the stack this frame runs on.
        info = pending_frame.create_unwind_info(_FrameId(gdb.Value(ctx).cast(sp.type), pc))
        info.add_saved_register("rip", gdb.Value(_u64(ctx + self.rip_at)).cast(pc.type))
        info.add_saved_register("rsp", gdb.Value(ctx + self.sp_after).cast(sp.type))
        for reg, off in _CTX_REGS:
            info.add_saved_register(reg, gdb.Value(_u64(ctx + off)).cast(pending_frame.read_register(reg).type))
        return info


_unwinder = _TaskUnwinder()
gdb.unwinder.register_unwinder(None, _unwinder, replace=True)


def _renumber(bt_text, drop=1):
    """Drops the first `drop` frames (1: frame #0, where the program really is) and renumbers the
    rest from #0. Also drops the null frame below a task's first one (greenlet entry zeroes its
    return address to end the chain)."""
    out = []
    keep = False
    for line in bt_text.splitlines():
        m = re.match(r"#(\d+)(\s+)", line)
        if m:
            n = int(m.group(1))
            keep = n >= drop and not re.search(r" 0x0+ in \?\? \(\)$", line)
            if keep:
                width = len(m.group(1)) + len(m.group(2))
                line = ("#%d" % (n - drop)).ljust(width + 1) + line[m.end():]
        elif line.startswith("Backtrace stopped"):
            keep = True
        if keep:
            out.append(line)
    return "\n".join(out)


def _bt_args(words, add):
    """gdb `bt` arguments, with a frame count raised by `add` (the hidden frame #0)."""
    out = []
    for w in words:
        if re.fullmatch(r"\d+", w):
            w = str(int(w) + add)
        out.append(w)
    return " ".join(out)


def _backtrace(sched, t, words):
    tid = int(t["id"])
    state = int(t["state"])
    if state == _STATE_DONE:
        print("gr: task #%d is done: it has no frames" % tid)
        return
    if int(sched["current"]) == int(t.address):
        th = _gdb_thread(sched)
        if th is None:
            raise gdb.GdbError("gr: task #%d is running on thread LWP %d, which gdb does not see"
                               % (tid, int(sched["os_thread"])))
        with _selection():
            th.switch()
            # The scheduler's current task: running, or parked while its scheduler waits for a
            # timer on its stack. Either way its frames are the thread's.
            print("gr: task #%d is the current task of thread LWP %d (gdb thread %d):" % (tid, th.ptid[1], th.num))
            print(_renumber(gdb.execute("bt " + _bt_args(words, 0), to_string=True), drop=0))
        return
    gl = _Greenlet(t["gl"])
    if gl.state != _Greenlet.ACTIVE:
        print("gr: task #%d has not started yet: it has no frames" % tid)
        return
    if gdb.selected_thread() is None:
        raise gdb.GdbError("gr: no thread to unwind from (is the program running, or a core file loaded?)")
    if not hasattr(gdb.PendingFrame, "level"):
        raise gdb.GdbError("gr bt: this gdb is too old (needs PendingFrame.level(), gdb 12 or later)")
    arch = gdb.newest_frame().architecture().name()
    if "x86-64" not in arch:
        raise gdb.GdbError("gr bt: only x86_64 is supported (this is %s)" % arch)
    with _selection():
        _unwinder.ctx = gl.ctx
        _unwinder.rip_at, _unwinder.sp_after = gl.rip_at, gl.sp_after
        gdb.invalidate_cached_frames()
        try:
            text = gdb.execute("bt " + _bt_args(words, 1), to_string=True)
        finally:
            _unwinder.ctx = None
            gdb.invalidate_cached_frames()
    print("gr: task #%d, suspended (saved context at 0x%x):" % (tid, gl.ctx))
    print(_renumber(text))


# ---- the commands ---------------------------------------------------------------------------------


class _GrPrefix(gdb.Command):
    """gr's tasks: `gr tasks` lists them, `gr bt ID` prints one's backtrace (see `help gr tasks`)."""

    def __init__(self):
        super().__init__("gr", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class _GrTasks(gdb.Command):
    """List every task of every gr scheduler: id, name, state, what it waits on, spawn site, age,
switch count and stack use, as gr::dump prints them. Reads memory only (works on a core file).
Stack peak: from the lowest page of the stack holding a non-zero byte."""

    def __init__(self, name):
        super().__init__(name, gdb.COMMAND_STACK, gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        try:
            self._list()
        except gdb.MemoryError as e:
            raise gdb.GdbError("gr: cannot read the program's memory (%s). Does the core file match the program?" % e)

    def _list(self):
        scheds = _schedulers()
        if not scheds:
            print("gr: no scheduler is alive in this program")
            return
        for k, s in enumerate(scheds, 1):
            tasks = list(_tasks(s))
            running_sp = _thread_sp(s)
            print(_sched_header(k, s, len(tasks)))
            for t in tasks:
                print("  " + _task_line(s, t, running_sp))


class _GrBt(gdb.Command):
    """Print the backtrace of a gr task: gr bt ID [bt options], gr bt SCHEDULER:ID, or gr bt all.
A suspended task is unwound from the registers its greenlet saved when it switched away; the
running task's backtrace is its thread's. Options after the id go to `bt` (full, a count...).
`gr bt all` prints each unfinished task's line (as `gr tasks`) and backtrace."""

    def __init__(self):
        super().__init__("gr bt", gdb.COMMAND_STACK, gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        words = gdb.string_to_argv(arg)
        if not words:
            raise gdb.GdbError("usage: gr bt ID [bt options]  (ids as `gr tasks` lists them)")
        try:
            if words[0] == "all":
                scheds = _schedulers()
                for k, sched in enumerate(scheds, 1):
                    running_sp = _thread_sp(sched)
                    for t in _tasks(sched):
                        if int(t["state"]) == _STATE_DONE:
                            continue
                        if len(scheds) > 1:
                            print("\ngr: scheduler %d, %s" % (k, _task_line(sched, t, running_sp)))
                        else:
                            print("\ngr: %s" % _task_line(sched, t, running_sp))
                        _backtrace(sched, t, words[1:])
                return
            sched, t = _find_task(words[0])
            _backtrace(sched, t, words[1:])
        except gdb.MemoryError as e:
            raise gdb.GdbError("gr: cannot read the program's memory (%s). Does the core file match the program?" % e)


_GrPrefix()
_GrTasks("gr tasks")
_GrTasks("gr dump")
_GrBt()
