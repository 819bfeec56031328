extension ServiceName {
    /// Whether this name is exactly `bytes` in UTF-8: a name read from the wire that repeats the
    /// last one read on the connection need not be validated again.
    func hasBytes(_ bytes: ArraySlice<UInt8>) -> Bool {
        value.utf8.withContiguousStorageIfAvailable { utf8 in
            bytes.withUnsafeBufferPointer { utf8.elementsEqual($0) }
        } ?? value.utf8.elementsEqual(bytes)
    }
}
