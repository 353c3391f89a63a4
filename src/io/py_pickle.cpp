#include "io/py_pickle.h"

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include "vlm/core/check.h"

namespace vlm::py {

ValuePtr Value::get(const std::string& key) const {
  for (const auto& [k, v] : dict)
    if (k->kind == Kind::String && k->s == key) return v;
  return nullptr;
}

std::string Value::type_name() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Tensor: return "tensor";
    case Kind::Global: return "global " + s;
    case Kind::Object: return "object " + s;
  }
  return "?";
}

namespace {

ValuePtr make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}

at::ScalarType storage_dtype(const std::string& name, const std::string& what) {
  static const std::map<std::string, at::ScalarType> types = {
      {"torch.FloatStorage", at::kFloat},    {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong}, {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},    {"torch.CharStorage", at::kChar},     {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool}};
  auto it = types.find(name);
  VLM_CHECK(it != types.end(), what, ": unsupported storage type ", name);
  return it->second;
}

std::vector<int64_t> int_tuple(const ValuePtr& v, const std::string& what) {
  VLM_CHECK(v && (v->is(Value::Kind::Tuple) || v->is(Value::Kind::List)), what, ": expected a tuple of ints, got ",
            v ? v->type_name() : "nothing");
  std::vector<int64_t> out;
  for (const auto& x : v->items) {
    VLM_CHECK(x->is(Value::Kind::Int), what, ": expected a tuple of ints, found a ", x->type_name());
    out.push_back(x->i);
  }
  return out;
}

class Unpickler {
 public:
  Unpickler(const std::string& bytes, std::string what, const StorageLoader& storage)
      : data_(bytes), what_(std::move(what)), storage_(storage) {}

  ValuePtr run() {
    for (;;) {
      const uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;          // PROTO
        case 0x95: take(8); break;       // FRAME (the frame length; frames only group reads)
        case '.': {                      // STOP
          VLM_CHECK(!stack_.empty(), what_, ": empty pickle");
          return stack_.back();
        }
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case '0': pop(); break;                             // POP
        case '1': pop_mark(); break;                        // POP_MARK
        case '2': push(top()); break;                       // DUP
        case 'N': push(make(Value::Kind::None)); break;
        case 0x88: push_bool(true); break;   // NEWTRUE
        case 0x89: push_bool(false); break;  // NEWFALSE
        case 'J': push_int(static_cast<int32_t>(le(4))); break;                // BININT
        case 'K': push_int(static_cast<int64_t>(u8())); break;                 // BININT1
        case 'M': push_int(static_cast<int64_t>(le(2))); break;                // BININT2
        case 0x8a: push_int(long_n(u8())); break;                              // LONG1
        case 0x8b: push_int(long_n(static_cast<size_t>(le(4)))); break;        // LONG4
        case 'G': {                                                            // BINFLOAT (big-endian)
          uint64_t bits = 0;
          for (unsigned char c : take(8)) bits = (bits << 8) | c;
          double d;
          std::memcpy(&d, &bits, 8);
          auto v = make(Value::Kind::Float);
          v->f = d;
          push(v);
          break;
        }
        case 'X': push_str(Value::Kind::String, take(le(4))); break;   // BINUNICODE
        case 0x8c: push_str(Value::Kind::String, take(u8())); break;   // SHORT_BINUNICODE
        case 0x8d: push_str(Value::Kind::String, take(le(8))); break;  // BINUNICODE8
        case 'T': push_str(Value::Kind::String, take(le(4))); break;   // BINSTRING
        case 'U': push_str(Value::Kind::String, take(u8())); break;    // SHORT_BINSTRING
        case 'B': push_str(Value::Kind::Bytes, take(le(4))); break;    // BINBYTES
        case 'C': push_str(Value::Kind::Bytes, take(u8())); break;     // SHORT_BINBYTES
        case 0x8e: push_str(Value::Kind::Bytes, take(le(8))); break;   // BINBYTES8
        case ']': push(make(Value::Kind::List)); break;                // EMPTY_LIST
        case '}': push(make(Value::Kind::Dict)); break;                // EMPTY_DICT
        case ')': push(make(Value::Kind::Tuple)); break;               // EMPTY_TUPLE
        case 0x8f: push(make(Value::Kind::List)); break;               // EMPTY_SET (as a list)
        case 't': case 'l': {                                          // TUPLE, LIST
          auto v = make(op == 't' ? Value::Kind::Tuple : Value::Kind::List);
          v->items = pop_mark();
          push(v);
          break;
        }
        case 0x85: case 0x86: case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
          const size_t n = op - 0x84;
          need(n);
          auto v = make(Value::Kind::Tuple);
          v->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(v);
          break;
        }
        case 'd': {  // DICT
          auto items = pop_mark();
          auto v = make(Value::Kind::Dict);
          set_items(v, items);
          push(v);
          break;
        }
        case 'a': {  // APPEND
          auto x = pop();
          append(top(), {x});
          break;
        }
        case 'e': case 0x90: {  // APPENDS, ADDITEMS
          auto items = pop_mark();
          append(top(), items);
          break;
        }
        case 's': {  // SETITEM
          auto value = pop();
          auto key = pop();
          set_items(top(), {key, value});
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          set_items(top(), items);
          break;
        }
        case 'q': memo_[u8()] = top(); break;                      // BINPUT
        case 'r': memo_[le(4)] = top(); break;                     // LONG_BINPUT
        case 0x94: {                                               // MEMOIZE
          const uint64_t k = memo_.size();
          memo_[k] = top();
          break;
        }
        case 'h': push(memo(u8())); break;                         // BINGET
        case 'j': push(memo(le(4))); break;                        // LONG_BINGET
        case 'c': {                                                // GLOBAL
          std::string module = line(), name = line();
          push_str(Value::Kind::Global, module + "." + name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(), module = pop();
          VLM_CHECK(name->is(Value::Kind::String) && module->is(Value::Kind::String), what_,
                    ": malformed STACK_GLOBAL");
          push_str(Value::Kind::Global, module->s + "." + name->s);
          break;
        }
        case 'R': {  // REDUCE
          auto args = pop();
          auto callable = pop();
          push(call(callable, args));
          break;
        }
        case 0x81: {  // NEWOBJ
          auto args = pop();
          auto cls = pop();
          push(call(cls, args));
          break;
        }
        case 0x92: {  // NEWOBJ_EX
          pop();      // kwargs
          auto args = pop();
          auto cls = pop();
          push(call(cls, args));
          break;
        }
        case 'b': {  // BUILD: object state (an OrderedDict's _metadata, ...) is not needed
          pop();
          need(1);
          break;
        }
        case 'Q': {  // BINPERSID
          auto pid = pop();
          push(persistent(pid));
          break;
        }
        default: {
          std::ostringstream os;
          os << what_ << ": unsupported pickle opcode 0x" << std::hex << int(op) << std::dec << " at byte "
             << pos_ - 1;
          VLM_FAIL(os.str());
        }
      }
    }
  }

 private:
  std::string take(uint64_t n) {
    VLM_CHECK(n <= data_.size() - pos_, what_, ": the pickle ends early (truncated file?)");
    std::string s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint8_t u8() { return static_cast<uint8_t>(take(1)[0]); }
  uint64_t le(int n) {
    std::string b = take(n);
    uint64_t x = 0;
    for (int k = n - 1; k >= 0; --k) x = (x << 8) | static_cast<uint8_t>(b[k]);
    return x;
  }
  int64_t long_n(size_t n) {
    VLM_CHECK(n <= 8, what_, ": integer of ", n, " bytes is too large");
    if (n == 0) return 0;
    std::string b = take(n);
    uint64_t x = 0;
    for (size_t k = n; k-- > 0;) x = (x << 8) | static_cast<uint8_t>(b[k]);
    if (n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80)) x |= ~uint64_t(0) << (8 * n);  // sign-extend
    return static_cast<int64_t>(x);
  }
  std::string line() {
    auto end = data_.find('\n', pos_);
    VLM_CHECK(end != std::string::npos, what_, ": the pickle ends early (truncated file?)");
    std::string s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  void need(size_t n) { VLM_CHECK(stack_.size() >= n, what_, ": malformed pickle (stack underflow)"); }
  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr top() {
    need(1);
    return stack_.back();
  }
  ValuePtr pop() {
    need(1);
    auto v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::vector<ValuePtr> pop_mark() {
    VLM_CHECK(!marks_.empty() && marks_.back() <= stack_.size(), what_, ": malformed pickle (no MARK)");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  ValuePtr memo(uint64_t k) {
    auto it = memo_.find(k);
    VLM_CHECK(it != memo_.end(), what_, ": malformed pickle (memo ", k, " unset)");
    return it->second;
  }
  void push_bool(bool b) {
    auto v = make(Value::Kind::Bool);
    v->b = b;
    push(v);
  }
  void push_int(int64_t i) {
    auto v = make(Value::Kind::Int);
    v->i = i;
    push(v);
  }
  void push_str(Value::Kind k, std::string s) {
    auto v = make(k);
    v->s = std::move(s);
    push(v);
  }
  void append(const ValuePtr& list, const std::vector<ValuePtr>& items) {
    if (list->is(Value::Kind::Object)) return;  // an unknown container: its contents are not needed
    VLM_CHECK(list->is(Value::Kind::List), what_, ": malformed pickle (APPEND to a ", list->type_name(), ")");
    list->items.insert(list->items.end(), items.begin(), items.end());
  }
  void set_items(const ValuePtr& dict, const std::vector<ValuePtr>& items) {
    VLM_CHECK(items.size() % 2 == 0, what_, ": malformed pickle (odd SETITEMS)");
    if (dict->is(Value::Kind::Object)) return;
    VLM_CHECK(dict->is(Value::Kind::Dict), what_, ": malformed pickle (SETITEM on a ", dict->type_name(), ")");
    for (size_t k = 0; k < items.size(); k += 2) dict->dict.emplace_back(items[k], items[k + 1]);
  }

  ValuePtr call(const ValuePtr& callable, const ValuePtr& args) {
    const std::string name = callable->is(Value::Kind::Global) ? callable->s : callable->type_name();
    const std::vector<ValuePtr> no_args;
    const auto& a = args->is(Value::Kind::Tuple) ? args->items : no_args;
    if (name == "collections.OrderedDict" || name == "builtins.dict") {
      auto v = make(Value::Kind::Dict);
      if (!a.empty() && a[0]->is(Value::Kind::List))  // OrderedDict([(k, v), ...])
        for (const auto& kv : a[0]->items)
          if (kv->items.size() == 2) v->dict.emplace_back(kv->items[0], kv->items[1]);
      return v;
    }
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      VLM_CHECK(a.size() >= 4 && a[0]->is(Value::Kind::Tensor) && a[1]->is(Value::Kind::Int), what_,
                ": malformed ", name, " call");
      auto size = int_tuple(a[2], what_), stride = int_tuple(a[3], what_);
      const at::Tensor& storage = a[0]->tensor;
      int64_t extent = a[1]->i + 1;  // last element + 1 must lie in the storage
      bool empty = false;
      for (size_t d = 0; d < size.size(); ++d) {
        empty |= size[d] == 0;
        extent += (size[d] - 1) * stride[d];
      }
      VLM_CHECK(empty || extent <= storage.numel(), what_, ": a tensor of size ", at::IntArrayRef(size),
                " reaches past its storage of ", storage.numel(), " elements");
      auto v = make(Value::Kind::Tensor);
      v->tensor = empty ? at::empty(size, storage.options()) : storage.as_strided(size, stride, a[1]->i).clone();
      return v;
    }
    if (name == "torch.jit._pickle.restore_type_tag" || name.compare(0, 24, "torch.jit._pickle.build_") == 0) {
      // LibTorch's own pickler (torch::pickle_save) wraps typed containers: (value, type string) / (list,)
      VLM_CHECK(!a.empty(), what_, ": malformed ", name, " call");
      return a[0];
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      VLM_CHECK(!a.empty() && a[0]->is(Value::Kind::Tensor), what_, ": malformed ", name, " call");
      return a[0];
    }
    auto v = make(Value::Kind::Object);  // anything else: kept opaque, never executed
    v->s = name;
    v->items = a;
    return v;
  }

  ValuePtr persistent(const ValuePtr& pid) {
    // torch.save: ('storage', torch.<Type>Storage, key, location, numel)
    VLM_CHECK(pid->is(Value::Kind::Tuple) && pid->items.size() >= 5 && pid->items[0]->is(Value::Kind::String) &&
                  pid->items[0]->s == "storage" && pid->items[1]->is(Value::Kind::Global) &&
                  pid->items[2]->is(Value::Kind::String) && pid->items[4]->is(Value::Kind::Int),
              what_, ": unsupported persistent id in the pickle (not a torch storage)");
    VLM_CHECK(storage_ != nullptr, what_, ": the pickle refers to tensor storages; read it as a torch.save archive");
    const std::string& key = pid->items[2]->s;
    auto it = storages_.find(key);
    if (it == storages_.end()) {
      auto v = make(Value::Kind::Tensor);
      v->tensor = storage_(key, storage_dtype(pid->items[1]->s, what_), pid->items[4]->i);
      it = storages_.emplace(key, v).first;
    }
    return it->second;
  }

  const std::string& data_;
  std::string what_;
  const StorageLoader& storage_;
  size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, ValuePtr> memo_;
  std::map<std::string, ValuePtr> storages_;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  VLM_CHECK(f, "cannot open '", path, "'");
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

}  // namespace

ValuePtr read_pickle(const std::string& bytes, const std::string& what, const StorageLoader& storage) {
  return Unpickler(bytes, what, storage).run();
}

ValuePtr read_pickle_file(const std::string& path) { return read_pickle(read_file(path), "'" + path + "'"); }

ValuePtr read_torch_save(const std::string& path) {
  const std::string what = "'" + path + "'";
  std::string head;
  {
    std::ifstream f(path, std::ios::binary);
    VLM_CHECK(f, "cannot open ", what);
    head.resize(4);
    f.read(head.data(), 4);
    head.resize(static_cast<size_t>(f.gcount()));
  }
  VLM_CHECK(head != std::string("\x80\x02\x8a\x0a", 4), what,
            " is a legacy (pre-1.6, non-zip) torch.save file; re-save it in Python with torch.save(torch.load(p), p)");
  VLM_CHECK(head == std::string("PK\x03\x04", 4), what, " is not a torch.save archive (expected a zip file)");
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::string pickle;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    VLM_CHECK(reader->hasRecord("data.pkl"), what, " is a zip file without data.pkl: not a torch.save archive");
    if (reader->hasRecord("byteorder")) {
      auto [ptr, n] = reader->getRecord("byteorder");
      std::string order(static_cast<const char*>(ptr.get()), n);
      VLM_CHECK(order == "little", what, " stores its tensors ", order, "-endian; only little-endian is supported");
    }
    auto [ptr, n] = reader->getRecord("data.pkl");
    pickle.assign(static_cast<const char*>(ptr.get()), n);
  } catch (const c10::Error& e) {
    VLM_FAIL(what, " is not a readable torch.save archive (truncated or damaged?): ", e.what_without_backtrace());
  }
  StorageLoader load = [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
    const std::string record = "data/" + key;
    at::Tensor t;
    try {
      VLM_CHECK(reader->hasRecord(record), what, " lacks the storage record ", record);
      auto [ptr, n] = reader->getRecord(record);
      // The element count comes from the pickle: check it against the record before allocating.
      const auto element_size = static_cast<uint64_t>(c10::elementSize(dtype));
      VLM_CHECK(numel >= 0 && static_cast<uint64_t>(numel) <= n / element_size, what, ": storage ", record, " holds ", n,
                " bytes, ", numel, " elements of ", element_size, " bytes expected");
      t = at::empty({numel}, at::TensorOptions().dtype(dtype));
      std::memcpy(t.data_ptr(), ptr.get(), static_cast<size_t>(numel) * element_size);
    } catch (const c10::Error& e) {
      VLM_FAIL(what, ": cannot read storage ", record, ": ", e.what_without_backtrace());
    }
    return t;
  };
  return read_pickle(pickle, what, load);
}

}  // namespace vlm::py
