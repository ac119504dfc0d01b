/// One record of a CSV file and the line it starts on.
struct CSVRecord {
    /// 1-based line of the record's first character.
    let line: Int
    /// The fields, unquoted.
    let fields: [String]
}

/// An unrecoverable CSV syntax error (an unterminated quoted field).
struct CSVSyntaxError: Error {
    /// 1-based line where the broken record starts.
    let line: Int
    /// What was wrong.
    let message: String
}

/// Splits CSV text (RFC 4180 with the leniencies of Python's `csv` and pandas) into records.
///
/// Fields may be quoted with `"`, a doubled `""` inside quotes is a quote, and quoted fields may
/// span lines. Text after a closing quote is appended to the field, as Python's reader does.
/// `\n`, `\r\n` and `\r\r\n` (a file converted twice) end a record; blank lines are skipped.
func csvRecords(_ bytes: [UInt8]) throws(CSVSyntaxError) -> [CSVRecord] {
    let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), newline = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
    var records: [CSVRecord] = []
    var fields: [String] = []
    var field: [UInt8] = []
    var line = 1, recordLine = 1
    var inQuotes = false
    var recordHasContent = false
    var index = bytes.startIndex

    func finishField() {
        fields.append(String(decoding: field, as: UTF8.self))
        field.removeAll(keepingCapacity: true)
    }
    func finishRecord() {
        finishField()
        if recordHasContent { records.append(CSVRecord(line: recordLine, fields: fields)) }
        fields.removeAll()
        recordHasContent = false
    }

    while index < bytes.endIndex {
        let byte = bytes[index]
        index += 1
        if inQuotes {
            if byte == quote {
                if index < bytes.endIndex && bytes[index] == quote {
                    field.append(quote)
                    index += 1
                } else {
                    inQuotes = false
                }
            } else {
                if byte == newline { line += 1 }
                field.append(byte)
            }
            continue
        }
        switch byte {
        case quote:
            inQuotes = true
            recordHasContent = true
        case comma:
            finishField()
            recordHasContent = true
        case newline:
            finishRecord()
            line += 1
            recordLine = line
        case cr where endsLine(bytes, from: index):
            continue
        default:
            field.append(byte)
            recordHasContent = true
        }
    }
    if inQuotes { throw CSVSyntaxError(line: recordLine, message: "unterminated quoted field") }
    finishRecord()
    return records
}

/// Whether only carriage returns and then a newline follow `index`: the `\r` before it ends the line.
private func endsLine(_ bytes: [UInt8], from index: Int) -> Bool {
    var i = index
    while i < bytes.endIndex && bytes[i] == UInt8(ascii: "\r") { i += 1 }
    return i < bytes.endIndex && bytes[i] == UInt8(ascii: "\n")
}
