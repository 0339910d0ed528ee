// converge.hpp: header-only C++17 wrapper over the C ABI in converge.h.
//
// - Handles are move-only RAII objects: engine, options, batch,
//   key_iterator, deltas. Destructors never throw (engine's destructor
//   closes and ignores the status: call close() to see it).
// - Every failure throws converge::error, carrying the cvg_status_t and the
//   library's message.
// - Keys, values and encoded bytes are passed as byte_view (built from
//   std::string_view, std::string, const char *, std::vector<uint8_t>) and
//   returned as converge::bytes (std::vector<uint8_t>).
// - Thread safety is the C API's: an engine's const methods may run on
//   several threads at once; other objects need one user at a time.
#ifndef CONVERGE_HPP
#define CONVERGE_HPP

#include "converge.h"

#include <array>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace converge {

/// Owned bytes.
using bytes = std::vector<uint8_t>;
/// A replica id: 16 bytes, big-endian.
using replica_id = std::array<uint8_t, 16>;

/// A failed call: the status and the library's message.
class error : public std::runtime_error {
public:
  error(cvg_status_t status, const std::string &message)
      : std::runtime_error(std::string(cvg_status_name(status)) + ": " + message),
        status_(status) {}
  /// The C status.
  cvg_status_t status() const noexcept { return status_; }

private:
  cvg_status_t status_;
};

/// Borrowed input bytes.
class byte_view {
public:
  byte_view(const uint8_t *data, size_t size) noexcept : data_(data), size_(size) {}
  byte_view(std::string_view s) noexcept
      : data_(reinterpret_cast<const uint8_t *>(s.data())), size_(s.size()) {}
  byte_view(const std::string &s) noexcept : byte_view(std::string_view(s)) {}
  byte_view(const char *s) noexcept : byte_view(std::string_view(s)) {}
  byte_view(const bytes &b) noexcept : data_(b.data()), size_(b.size()) {}
  const uint8_t *data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }

private:
  const uint8_t *data_;
  size_t size_;
};

namespace detail {
inline std::string last_message() {
  std::string m(cvg_last_error_message(nullptr, 0), '\0');
  if (!m.empty())
    cvg_last_error_message(&m[0], m.size() + 1);
  return m;
}

inline void check(cvg_status_t status) {
  if (status != CVG_STATUS_OK)
    throw error(status, last_message());
}

inline bytes copy(const uint8_t *p, size_t n) { return n ? bytes(p, p + n) : bytes(); }

/// Take ownership of library bytes: copy them and free the original.
inline bytes take(cvg_bytes_t &b) {
  bytes out;
  try {
    out = copy(b.ptr, b.len);
  } catch (...) {
    cvg_bytes_free(&b);
    throw;
  }
  cvg_bytes_free(&b);
  return out;
}

inline std::string_view view(cvg_slice_t s) noexcept {
  return s.len ? std::string_view(reinterpret_cast<const char *>(s.ptr), s.len)
               : std::string_view();
}
} // namespace detail

/// Bytes as a std::string (handy for text keys and values).
inline std::string to_string(const bytes &b) { return std::string(b.begin(), b.end()); }

/// The library version string.
inline std::string version() { return cvg_version(); }

/// Options for engine::open. Setters chain and throw on bad values.
class options {
public:
  options() : h_(cvg_options_new()) {
    if (!h_)
      throw error(CVG_STATUS_PANIC, "cvg_options_new failed");
  }
  ~options() { cvg_options_free(h_); }
  options(options &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  options &operator=(options &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  options(const options &) = delete;
  options &operator=(const options &) = delete;

  options &replica(const replica_id &id) {
    detail::check(cvg_options_set_replica_id(h_, id.data(), id.size()));
    return *this;
  }
  options &durability(cvg_durability_t d) {
    detail::check(cvg_options_set_durability(h_, d));
    return *this;
  }
  options &create_if_missing(bool v) {
    detail::check(cvg_options_set_create_if_missing(h_, v));
    return *this;
  }
  options &block_cache_bytes(size_t n) {
    detail::check(cvg_options_set_block_cache_bytes(h_, n));
    return *this;
  }
  options &write_buffer_bytes(size_t n) {
    detail::check(cvg_options_set_write_buffer_bytes(h_, n));
    return *this;
  }
  options &background_jobs(uint32_t n) {
    detail::check(cvg_options_set_background_jobs(h_, n));
    return *this;
  }
  options &compression(bool v) {
    detail::check(cvg_options_set_compression(h_, v));
    return *this;
  }
  options &bloom_bits_per_key(double bits) {
    detail::check(cvg_options_set_bloom_bits_per_key(h_, bits));
    return *this;
  }
  options &lock_stripes(size_t n) {
    detail::check(cvg_options_set_lock_stripes(h_, n));
    return *this;
  }
  options &anti_entropy(bool v) {
    detail::check(cvg_options_set_anti_entropy(h_, v));
    return *this;
  }
  options &max_successive_merges(size_t n) {
    detail::check(cvg_options_set_max_successive_merges(h_, n));
    return *this;
  }
  options &type_cache_entries(size_t n) {
    detail::check(cvg_options_set_type_cache_entries(h_, n));
    return *this;
  }
  /// The C handle (owned by this object).
  const cvg_options_t *get() const noexcept { return h_; }

private:
  cvg_options_t *h_;
};

/// An atomic batch of operations (see engine::write).
class batch {
public:
  batch() : h_(cvg_batch_new()) {
    if (!h_)
      throw error(CVG_STATUS_PANIC, "cvg_batch_new failed");
  }
  ~batch() { cvg_batch_free(h_); }
  batch(batch &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  batch &operator=(batch &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  batch(const batch &) = delete;
  batch &operator=(const batch &) = delete;

  size_t size() const noexcept { return cvg_batch_len(h_); }
  batch &clear() {
    detail::check(cvg_batch_clear(h_));
    return *this;
  }
  batch &increment(byte_view k, uint64_t n) {
    detail::check(cvg_batch_increment(h_, k.data(), k.size(), n));
    return *this;
  }
  batch &pn_add(byte_view k, int64_t n) {
    detail::check(cvg_batch_pn_add(h_, k.data(), k.size(), n));
    return *this;
  }
  batch &gset_add(byte_view k, byte_view e) {
    detail::check(cvg_batch_gset_add(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &twop_add(byte_view k, byte_view e) {
    detail::check(cvg_batch_twop_add(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &twop_remove(byte_view k, byte_view e) {
    detail::check(cvg_batch_twop_remove(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &orset_add(byte_view k, byte_view e) {
    detail::check(cvg_batch_orset_add(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &orset_remove(byte_view k, byte_view e) {
    detail::check(cvg_batch_orset_remove(h_, k.data(), k.size(), e.data(), e.size()));
    return *this;
  }
  batch &orset_remove_observed(byte_view k, byte_view e, byte_view ctx) {
    detail::check(cvg_batch_orset_remove_observed(h_, k.data(), k.size(), e.data(),
                                                  e.size(), ctx.data(), ctx.size()));
    return *this;
  }
  batch &lww_set(byte_view k, byte_view v) {
    detail::check(cvg_batch_lww_set(h_, k.data(), k.size(), v.data(), v.size()));
    return *this;
  }
  batch &fww_set(byte_view k, byte_view v) {
    detail::check(cvg_batch_fww_set(h_, k.data(), k.size(), v.data(), v.size()));
    return *this;
  }
  batch &mv_write(byte_view k, byte_view v, byte_view ctx) {
    detail::check(cvg_batch_mv_write(h_, k.data(), k.size(), v.data(), v.size(),
                                     ctx.data(), ctx.size()));
    return *this;
  }
  batch &merge(byte_view k, byte_view b) {
    detail::check(cvg_batch_merge(h_, k.data(), k.size(), b.data(), b.size()));
    return *this;
  }
  /// The C handle (owned by this object).
  const cvg_batch_t *get() const noexcept { return h_; }

private:
  cvg_batch_t *h_;
};

/// The deltas of engine::write, packed; views stay valid while it lives.
class deltas {
public:
  explicit deltas(cvg_deltas_t *h) noexcept : h_(h) {}
  ~deltas() { cvg_deltas_free(h_); }
  deltas(deltas &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  deltas &operator=(deltas &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  deltas(const deltas &) = delete;
  deltas &operator=(const deltas &) = delete;

  size_t size() const noexcept { return cvg_deltas_len(h_); }
  /// Key and encoded delta of operation `i` (bytes viewed as chars).
  std::pair<std::string_view, std::string_view> operator[](size_t i) const {
    cvg_slice_t k, d;
    detail::check(cvg_deltas_get(h_, i, &k, &d));
    return {detail::view(k), detail::view(d)};
  }

private:
  cvg_deltas_t *h_;
};

/// A set read: members in byte order and the context for observed removes.
struct set_read {
  std::vector<bytes> members;
  bytes context;
};

/// A register's winning write.
struct stamped {
  bytes value;
  cvg_stamp_t stamp;
};

/// One MV register sibling.
struct sibling {
  bytes value;
  replica_id replica;
  uint64_t counter;
};

/// An MV register read: siblings and the context for the next write.
struct mv_read {
  std::vector<sibling> siblings;
  bytes context;
};

/// Iterator over keys with a prefix (see engine::keys).
class key_iterator {
public:
  explicit key_iterator(cvg_iter_t *h) noexcept : h_(h) {}
  ~key_iterator() { cvg_iter_free(h_); }
  key_iterator(key_iterator &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  key_iterator &operator=(key_iterator &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  key_iterator(const key_iterator &) = delete;
  key_iterator &operator=(const key_iterator &) = delete;

  /// The next key and its type, or nullopt at the end.
  std::optional<std::pair<std::string, cvg_crdt_type_t>> next() {
    bool has = false;
    cvg_slice_t k;
    cvg_crdt_type_t t = CVG_CRDT_NONE;
    detail::check(cvg_iter_next(h_, &has, &k, &t));
    if (!has)
      return std::nullopt;
    return std::make_pair(std::string(detail::view(k)), t);
  }

private:
  cvg_iter_t *h_;
};

namespace detail {
template <class F> struct resolve_ctx {
  F *fn;
  std::exception_ptr failure;
};

template <class F>
int resolve_trampoline(void *user, const cvg_sibling_t *s, size_t n, cvg_buffer_t *out) {
  auto *ctx = static_cast<resolve_ctx<F> *>(user);
  try { // no exception may cross into the library
    std::vector<sibling> sibs;
    sibs.reserve(n);
    for (size_t i = 0; i < n; i++) {
      sibling x{copy(s[i].value.ptr, s[i].value.len), {}, s[i].counter};
      for (size_t j = 0; j < 16; j++)
        x.replica[j] = s[i].replica[j];
      sibs.push_back(std::move(x));
    }
    bytes merged = (*ctx->fn)(static_cast<const std::vector<sibling> &>(sibs));
    return cvg_buffer_append(out, merged.data(), merged.size()) == CVG_STATUS_OK ? 0 : 1;
  } catch (...) {
    ctx->failure = std::current_exception();
    return 1;
  }
}
} // namespace detail

/// An open replica store (move-only). Const methods are thread-safe.
class engine {
public:
  /// Open (or create) the store in `path`.
  explicit engine(const std::string &path) { detail::check(cvg_engine_open(path.c_str(), nullptr, &h_)); }
  engine(const std::string &path, const options &o) {
    detail::check(cvg_engine_open(path.c_str(), o.get(), &h_));
  }
  ~engine() { cvg_engine_close(h_); }
  engine(engine &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  engine &operator=(engine &&o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  engine(const engine &) = delete;
  engine &operator=(const engine &) = delete;

  /// Close now and report the status (the object is then empty).
  void close() { detail::check(cvg_engine_close(std::exchange(h_, nullptr))); }

  replica_id id() const {
    replica_id r{};
    detail::check(cvg_engine_replica_id(h_, r.data()));
    return r;
  }

  // Operations: each returns its encoded delta, for peers' merge().
  bytes increment(byte_view k, uint64_t n) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_increment(h_, k.data(), k.size(), n, o); });
  }
  bytes pn_add(byte_view k, int64_t n) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_pn_add(h_, k.data(), k.size(), n, o); });
  }
  bytes gset_add(byte_view k, byte_view e) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_gset_add(h_, k.data(), k.size(), e.data(), e.size(), o); });
  }
  bytes twop_add(byte_view k, byte_view e) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_twop_add(h_, k.data(), k.size(), e.data(), e.size(), o); });
  }
  bytes twop_remove(byte_view k, byte_view e) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_twop_remove(h_, k.data(), k.size(), e.data(), e.size(), o); });
  }
  bytes orset_add(byte_view k, byte_view e) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_orset_add(h_, k.data(), k.size(), e.data(), e.size(), o); });
  }
  bytes orset_remove(byte_view k, byte_view e) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_orset_remove(h_, k.data(), k.size(), e.data(), e.size(), o); });
  }
  bytes orset_remove_observed(byte_view k, byte_view e, byte_view ctx) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_orset_remove_observed(h_, k.data(), k.size(), e.data(), e.size(),
                                               ctx.data(), ctx.size(), o); });
  }
  bytes lww_set(byte_view k, byte_view v) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_lww_set(h_, k.data(), k.size(), v.data(), v.size(), o); });
  }
  bytes fww_set(byte_view k, byte_view v) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_fww_set(h_, k.data(), k.size(), v.data(), v.size(), o); });
  }
  bytes mv_write(byte_view k, byte_view v, byte_view ctx) const {
    return op([&](cvg_bytes_t *o) { return cvg_engine_mv_write(h_, k.data(), k.size(), v.data(), v.size(), ctx.data(),
                                  ctx.size(), o); });
  }
  /// Join a peer's delta or state into `k`.
  void merge(byte_view k, byte_view b) const {
    detail::check(cvg_engine_merge(h_, k.data(), k.size(), b.data(), b.size()));
  }
  /// Apply a batch atomically; returns its deltas.
  deltas write(const batch &b) const {
    cvg_deltas_t *d = nullptr;
    detail::check(cvg_engine_write(h_, b.get(), &d));
    return deltas(d);
  }
  /// Apply a batch atomically, without its deltas.
  void apply(const batch &b) const { detail::check(cvg_engine_write(h_, b.get(), nullptr)); }

  // Reads.
  int64_t counter(byte_view k) const {
    int64_t v = 0;
    detail::check(cvg_engine_counter_value(h_, k.data(), k.size(), &v));
    return v;
  }
  /// The counter as 128 bits (never overflows).
  cvg_i128_t counter_wide(byte_view k) const {
    cvg_i128_t v{0, 0};
    detail::check(cvg_engine_counter_value_wide(h_, k.data(), k.size(), &v));
    return v;
  }
  set_read members(byte_view k) const {
    cvg_list_t *l = nullptr;
    cvg_bytes_t ctx{nullptr, 0};
    detail::check(cvg_engine_set_members(h_, k.data(), k.size(), &l, &ctx));
    set_read r;
    try {
      r.context = detail::copy(ctx.ptr, ctx.len);
      for (size_t i = 0; i < cvg_list_len(l); i++) {
        cvg_slice_t s;
        detail::check(cvg_list_get(l, i, &s));
        r.members.push_back(detail::copy(s.ptr, s.len));
      }
    } catch (...) {
      cvg_list_free(l);
      cvg_bytes_free(&ctx);
      throw;
    }
    cvg_list_free(l);
    cvg_bytes_free(&ctx);
    return r;
  }
  std::optional<stamped> reg(byte_view k) const {
    bool found = false;
    cvg_stamp_t st;
    cvg_bytes_t out{nullptr, 0};
    detail::check(cvg_engine_register(h_, k.data(), k.size(), &found, &out, &st));
    bytes v = detail::take(out);
    if (!found)
      return std::nullopt;
    return stamped{std::move(v), st};
  }
  mv_read mv(byte_view k) const {
    cvg_siblings_t *s = nullptr;
    cvg_bytes_t ctx{nullptr, 0};
    detail::check(cvg_engine_mv_read(h_, k.data(), k.size(), &s, &ctx));
    mv_read r;
    try {
      r.context = detail::copy(ctx.ptr, ctx.len);
      for (size_t i = 0; i < cvg_siblings_len(s); i++) {
        cvg_sibling_t x;
        detail::check(cvg_siblings_get(s, i, &x));
        sibling y{detail::copy(x.value.ptr, x.value.len), {}, x.counter};
        for (size_t j = 0; j < 16; j++)
          y.replica[j] = x.replica[j];
        r.siblings.push_back(std::move(y));
      }
    } catch (...) {
      cvg_siblings_free(s);
      cvg_bytes_free(&ctx);
      throw;
    }
    cvg_siblings_free(s);
    cvg_bytes_free(&ctx);
    return r;
  }
  /// Resolve MV siblings with `fn(const std::vector<sibling>&) -> bytes`.
  /// Returns the delta, or nullopt if there were fewer than two siblings.
  /// An exception from `fn` is rethrown here, and nothing is written.
  template <class F> std::optional<bytes> mv_resolve(byte_view k, F fn) const {
    detail::resolve_ctx<F> ctx{&fn, nullptr};
    bool resolved = false;
    cvg_bytes_t out{nullptr, 0};
    cvg_status_t st = cvg_engine_mv_resolve(h_, k.data(), k.size(), &detail::resolve_trampoline<F>,
                                            &ctx, &resolved, &out);
    if (ctx.failure)
      std::rethrow_exception(ctx.failure);
    detail::check(st);
    bytes d = detail::take(out);
    if (!resolved)
      return std::nullopt;
    return d;
  }

  // Metadata and anti-entropy.
  cvg_crdt_type_t key_type(byte_view k) const {
    cvg_crdt_type_t t = CVG_CRDT_NONE;
    detail::check(cvg_engine_key_type(h_, k.data(), k.size(), &t));
    return t;
  }
  std::optional<bytes> state(byte_view k) const {
    bool found = false;
    cvg_bytes_t out{nullptr, 0};
    detail::check(cvg_engine_state_bytes(h_, k.data(), k.size(), &found, &out));
    bytes s = detail::take(out);
    if (!found)
      return std::nullopt;
    return s;
  }
  key_iterator keys(byte_view prefix = byte_view(nullptr, 0)) const {
    cvg_iter_t *it = nullptr;
    detail::check(cvg_engine_keys(h_, prefix.data(), prefix.size(), &it));
    return key_iterator(it);
  }
  bytes version_vector() const {
    cvg_bytes_t b{nullptr, 0};
    detail::check(cvg_engine_version_vector(h_, &b));
    return detail::take(b);
  }
  cvg_root_t root() const {
    cvg_root_t r;
    detail::check(cvg_engine_root(h_, &r));
    return r;
  }
  bool verify() const {
    bool ok = false;
    detail::check(cvg_engine_verify(h_, &ok, nullptr));
    return ok;
  }
  size_t settle() const {
    size_t n = 0;
    detail::check(cvg_engine_settle(h_, &n));
    return n;
  }
  void flush() const { detail::check(cvg_engine_flush(h_)); }
  void sync_wal() const { detail::check(cvg_engine_sync_wal(h_)); }
  /// The C handle (owned by this object).
  const cvg_engine_t *get() const noexcept { return h_; }

private:
  /// Run an operation with a delta output and take the delta.
  template <class Call> static bytes op(Call call) {
    cvg_bytes_t out{nullptr, 0};
    detail::check(call(&out));
    return detail::take(out);
  }
  cvg_engine_t *h_ = nullptr;
};

} // namespace converge

#endif
