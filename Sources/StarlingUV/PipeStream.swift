import CLibUV

/// A libuv pipe, as used for a child process's stdin, stdout or stderr. Loop-confined.
public final class PipeStream: StreamHandle {
    /// Creates an unopened pipe handle; `ChildProcess` connects it to the child.
    init(loop: EventLoop, readBufferSize: Int = StreamHandle.defaultReadBufferSize) throws(UVError) {
        let handle = allocateHandle(uv_pipe_t.self)
        do {
            // ipc = 0: plain byte stream, no handle passing.
            try uvCheck(uv_pipe_init(loop.raw, handle, 0), "uv_pipe_init")
        } catch {
            handle.deallocate()
            throw error
        }
        let context = StreamContext(loop: loop, initialised: handle)
        context.readBufferSize = readBufferSize
        super.init(context: context)
    }
}
