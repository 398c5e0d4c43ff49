"""Each interpreter's own process environment (os.environ isolation between application
groups)."""

import os


def isolate_environ(snapshot):
    """Give this interpreter its own process environment, starting from `snapshot` (the process
    environment as it was before any application ran).

    In CPython every interpreter builds os.environ from the C `environ` when it starts, and
    `os.environ[k] = v`, `setdefault`, `del`, `os.putenv` and `os.unsetenv` write through to it:
    that is how one application's `os.environ.setdefault('DJANGO_SETTINGS_MODULE', ...)` reaches
    the next interpreter created. Here the writes go to a per-interpreter emulation of the C
    environment instead (`os.putenv`/`os.unsetenv` are rebound; os.environ looks them up at call
    time), the real one is never written, and os.environ is refilled from the snapshot.

    Child processes see this interpreter's environment, as they would see the C environment of
    a process of its own: subprocess (and so os.popen, asyncio's subprocesses, ...), os.system,
    os.posix_spawn/os.posix_spawnp with env=None, and os.exec*/os.spawn* without an explicit
    environment. Not covered: code that execs or
    spawns from C without passing an environment, and os.fork() children that exec from C;
    they inherit the real process environment (the snapshot plus anything C code set).
    """
    fsencode = os.fsencode
    # This interpreter's C environment: bytes -> bytes, like os.environ._data on POSIX.
    cenv = {}
    for key, value in snapshot.items():
        cenv[fsencode(key)] = fsencode(value)

    def check_key(key):
        key = fsencode(key)
        if not key or b'=' in key:
            raise ValueError('illegal environment variable name')
        if b'\0' in key:
            raise ValueError('embedded null byte')
        return key

    def putenv(key, value):
        key = check_key(key)
        value = fsencode(value)
        if b'\0' in value:
            raise ValueError('embedded null byte')
        cenv[key] = value

    def unsetenv(key):
        cenv.pop(check_key(key), None)

    putenv.__doc__ = 'Change or add an environment variable (of this application group only).'
    unsetenv.__doc__ = 'Delete an environment variable (of this application group only).'
    os.putenv = putenv
    os.unsetenv = unsetenv
    data = os.environ._data
    data.clear()
    data.update(cenv)

    def child_environ():
        return dict(cenv)

    # subprocess execs through _posixsubprocess.fork_exec; with env=None the child would inherit
    # the real C environment. Hand it this group's instead. (Patching this small C module rather
    # than subprocess.Popen keeps subprocess, and what it imports, out of memory until an
    # application imports it.)
    import _posixsubprocess
    real_fork_exec = _posixsubprocess.fork_exec

    def fork_exec(args, executable_list, close_fds, pass_fds, cwd, env, *rest):
        if env is None:
            env = [key + b'=' + value for key, value in cenv.items()]
        return real_fork_exec(args, executable_list, close_fds, pass_fds, cwd, env, *rest)

    fork_exec.__wrapped__ = real_fork_exec
    _posixsubprocess.fork_exec = fork_exec

    # From Python 3.13 subprocess spawns through os.posix_spawn (close_fds no longer rules it
    # out), passing env=None for "the process environment", which is the real C environment
    # again; os.posix_spawn/posix_spawnp with env=None get this group's instead. (subprocess
    # looks os.posix_spawn up at call time.)
    def spawn_wrapper(real):
        def spawn(path, argv, env, **kwargs):
            if env is None:
                env = child_environ()
            return real(path, argv, env, **kwargs)

        spawn.__name__ = spawn.__qualname__ = real.__name__
        spawn.__doc__ = real.__doc__
        spawn.__wrapped__ = real
        return spawn

    for name in ('posix_spawn', 'posix_spawnp'):
        real = getattr(os, name, None)
        if real is not None:
            setattr(os, name, spawn_wrapper(real))

    def system(command):
        """Execute the command in a subshell (with this application group's environment)."""
        import subprocess
        code = subprocess.call(command, shell=True)
        # os.system returns a wait status: the exit code in the high byte, or the signal.
        return -code if code < 0 else (code & 0xff) << 8

    real_execv = os.execv

    def execv(path, argv):
        """Execute a new program, replacing the current process (with this group's environment)."""
        os.execve(path, argv, child_environ())

    execv.__wrapped__ = real_execv
    system.__wrapped__ = os.system
    os.system = system
    os.execv = execv
