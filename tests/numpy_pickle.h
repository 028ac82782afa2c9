#pragma once
// Pickles of numpy arrays built byte by byte, as the files users hold were written: CIFAR's
// python release by Python 2's cPickle.dump(batch, f, 2), with str keys and data, and the same
// data re-pickled by Python 3, whose protocol 2 writes bytes as _codecs.encode(text, 'latin1').
// No numpy needed on the machine that runs the tests.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint_bytes.h"

namespace advft::testing {

/// A protocol-2 pickle written one value at a time, with BINPUT/LONG_BINPUT memo entries where
/// cPickle puts them (after dicts, lists, globals, call results and strings of 2+ bytes).
class Py2Pickle {
 public:
  /// How a str value is written: Python 2 wrote its str as (SHORT_)BINSTRING; Python 3
  /// writes bytes as _codecs.encode(u'...', 'latin1') under protocol 2.
  enum class Strings { kPython2, kPython3Bytes };

  explicit Py2Pickle(Strings strings = Strings::kPython2) : strings_(strings) {}

  /// The opcodes `ops` exactly as given.
  Py2Pickle& op(const std::string& ops) {
    body_ += ops;
    return *this;
  }

  Py2Pickle& put() {
    const uint32_t index = memo_++;
    body_ += index < 256 ? "q" + le_bytes(index, 1) : "r" + le_bytes(index, 4);
    return *this;
  }

  Py2Pickle& global(const std::string& module, const std::string& name) {
    return op("c" + module + "\n" + name + "\n").put();
  }

  /// BININT1, BININT2 or BININT, as cPickle picks them; LONG1 (a Python 2 long) past 32 bits.
  Py2Pickle& integer(int64_t v) {
    if (v >= 0 && v < 256) return op("K" + le_bytes(static_cast<uint64_t>(v), 1));
    if (v >= 0 && v < 65536) return op("M" + le_bytes(static_cast<uint64_t>(v), 2));
    if (v >= INT32_MIN && v <= INT32_MAX) {
      return op("J" + le_bytes(static_cast<uint32_t>(static_cast<int32_t>(v)), 4));
    }
    return op("\x8a\x08" + le_bytes(static_cast<uint64_t>(v), 8));
  }

  /// A str value (Python 2) or bytes value (Python 3): raw bytes, any values.
  Py2Pickle& str(const std::string& s) {
    if (strings_ == Strings::kPython3Bytes) {
      std::string utf8;  // each byte is the code point of the same value
      for (unsigned char c : s) {
        if (c < 0x80) {
          utf8 += static_cast<char>(c);
        } else {
          utf8 += static_cast<char>(0xc0 | (c >> 6));
          utf8 += static_cast<char>(0x80 | (c & 0x3f));
        }
      }
      return global("_codecs", "encode")
          .op(pickle_text(utf8))
          .op(pickle_text("latin1"))
          .op("\x86R");
    }
    op(s.size() < 256 ? "U" + le_bytes(s.size(), 1) + s : "T" + le_bytes(s.size(), 4) + s);
    return s.size() >= 2 ? put() : *this;  // cPickle leaves 1-character strings out of the memo
  }

  /// A Python str of `s` (ASCII): Python 2's str, Python 3's str (BINUNICODE) when re-pickled.
  Py2Pickle& native(const std::string& s) {
    if (strings_ == Strings::kPython3Bytes) return op(pickle_text(s)).put();
    return str(s);
  }

  /// A tuple of ints as cPickle writes it: TUPLE1-3, or MARK ... TUPLE.
  Py2Pickle& int_tuple(const std::vector<int64_t>& values) {
    if (values.empty() || values.size() > 3) op("(");
    for (int64_t v : values)
      integer(v);
    if (values.empty() || values.size() > 3) return op("t");
    return op(std::string(1, static_cast<char>(0x84 + values.size())));
  }

  /// A list of ints: EMPTY_LIST, then APPENDS of up to 1000 items, as cPickle batches them.
  Py2Pickle& int_list(const std::vector<int64_t>& values) {
    op("]").put();
    for (size_t start = 0; start < values.size(); start += 1000) {
      op("(");
      for (size_t i = start; i < values.size() && i < start + 1000; ++i)
        integer(values[i]);
      op("e");
    }
    return *this;
  }

  Py2Pickle& str_list(const std::vector<std::string>& values) {
    op("]").put().op("(");
    for (const std::string& s : values)
      str(s);
    return op("e");
  }

  /// numpy.dtype(code, 0, 1) with its state (3, order, None, None, None, -1, -1, 0).
  Py2Pickle& dtype(const std::string& code, const std::string& order) {
    global("numpy", "dtype").native(code).integer(0).integer(1).op("\x87R").put();
    return op("(K\x03").native(order).op("NNN").integer(-1).integer(-1).integer(0).op("tb");
  }

  /// An ndarray as numpy's __reduce__ pickles it: _reconstruct(ndarray, (0,), 'b'), then BUILD
  /// with (1, shape, dtype, is_fortran, data).
  Py2Pickle& ndarray(const std::vector<int64_t>& shape, const std::string& code,
                     const std::string& order, const std::string& data, bool fortran = false,
                     const std::string& module = "numpy.core.multiarray") {
    global(module, "_reconstruct").global("numpy", "ndarray").int_tuple({0}).str("b");
    op("\x87R").put().op("(").integer(1).int_tuple(shape).dtype(code, order);
    return op(fortran ? "\x88" : "\x89").str(data).op("tb");
  }

  /// The whole pickle: header, body, STOP.
  std::string bytes() const { return std::string("\x80\x02", 2) + body_ + "."; }

 private:
  std::string body_;
  uint32_t memo_ = 1;  // cPickle's first memo index
  Strings strings_;
};

/// What one batch file of CIFAR's python release holds.
struct CifarPyBatch {
  std::string pixels;          ///< N * 3072 bytes, each row R, G, B planes of 32x32
  std::vector<int64_t> shape;  ///< of 'data': {N, 3072} in a real file
  /// ("labels", ...) for CIFAR-10; ("fine_labels", ...) and ("coarse_labels", ...) for -100.
  std::vector<std::pair<std::string, std::vector<int64_t>>> labels;
  std::string batch_label = "training batch 1 of 5";
};

/// A batch file of CIFAR's python release, keys in the order Python 2's dict gave them.
inline std::string cifar_py_batch(const CifarPyBatch& batch,
                                  Py2Pickle::Strings strings = Py2Pickle::Strings::kPython2) {
  Py2Pickle p(strings);
  p.op("}").put().op("(");
  p.str("data").ndarray(batch.shape, "u1", "|", batch.pixels);
  size_t count = 0;
  for (const auto& [key, values] : batch.labels) {
    p.str(key).int_list(values);
    count = values.size();
  }
  p.str("batch_label").str(batch.batch_label);
  std::vector<std::string> filenames;
  for (size_t i = 0; i < count; ++i)
    filenames.push_back("image_" + std::to_string(i) + ".png");
  p.str("filenames").str_list(filenames);
  return p.op("u").bytes();
}

}  // namespace advft::testing
