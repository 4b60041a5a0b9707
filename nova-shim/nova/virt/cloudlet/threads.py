"""Long libcloudlet calls off the eventlet hub.

nova-compute is eventlet-monkey-patched; a ctypes call that takes seconds
would stall RPC, heartbeats and periodic tasks. Under eventlet the call
runs in eventlet's native thread pool (tpool.execute returns its result and
re-raises its exception); without monkey patching (tests, tools) it runs
directly. Kept in one place: upstream Nova is removing eventlet.
"""


def _patched():
    try:
        from eventlet import patcher
    except ImportError:
        return False
    return patcher.is_monkey_patched("thread")


def execute(fn, *args, **kwargs):
    if _patched():
        from eventlet import tpool
        return tpool.execute(fn, *args, **kwargs)
    return fn(*args, **kwargs)
