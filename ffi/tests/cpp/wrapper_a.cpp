// C++ wrapper test (two translation units with wrapper_b.cpp).
// Usage: test_wrapper <empty scratch directory>
#include "converge.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

converge::bytes offline_edit(const converge::engine &b);
std::string first_member(const converge::engine &e, const std::string &key);
int status_of_wrong_type(const converge::engine &e);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                   #cond);                                                     \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

template <class F> static cvg_status_t status_of(F f) {
  try {
    f();
  } catch (const converge::error &e) {
    CHECK(std::strlen(e.what()) > 0);
    return e.status();
  }
  return CVG_STATUS_OK;
}

static converge::options opts(uint8_t id) {
  converge::replica_id r{};
  r.fill(id);
  converge::options o;
  o.replica(r).block_cache_bytes(1 << 20).write_buffer_bytes(1 << 20).background_jobs(1);
  o.compression(true).bloom_bits_per_key(10).lock_stripes(64).anti_entropy(true);
  o.max_successive_merges(0).type_cache_entries(1024).create_if_missing(true);
  o.durability(CVG_DURABILITY_BUFFERED);
  return o;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <empty scratch directory>\n", argv[0]);
    return 2;
  }
  const std::string base = argv[1];
  CHECK(converge::version() == cvg_version());

  converge::engine a(base + "/a", opts(1));
  converge::engine b(base + "/b", opts(2));
  CHECK(a.id()[0] == 1 && b.id()[15] == 2);

  // Every type through the wrapper, shipped to the peer as deltas.
  b.merge("hits", a.increment("hits", 3));
  b.merge("pn", a.pn_add("pn", -2));
  b.merge("gs", a.gset_add("gs", "x"));
  b.merge("tp", a.twop_add("tp", "x"));
  b.merge("tp", a.twop_remove("tp", "x"));
  b.merge("cart", a.orset_add("cart", "milk"));
  a.merge("cart", offline_edit(b));
  b.merge("lww", a.lww_set("lww", "v1"));
  b.merge("fww", a.fww_set("fww", "f1"));
  CHECK(b.counter("hits") == 3 && b.counter("pn") == -2);
  CHECK(first_member(b, "cart") == "bread");
  CHECK(a.members("cart").members.size() == 2);
  CHECK(a.members("tp").members.empty());
  CHECK(b.reg("lww").has_value() && converge::to_string(b.reg("lww")->value) == "v1");
  CHECK(!b.reg("never").has_value());

  // Observed remove through the read context.
  converge::set_read r = a.members("cart");
  b.merge("cart", a.orset_remove_observed("cart", "milk", r.context));
  b.merge("cart", a.orset_remove("cart", "nothing"));
  CHECK(b.members("cart").members.size() == 1);

  // MV siblings, resolved by a lambda; an exception from it propagates and
  // writes nothing.
  a.merge("mv", b.mv_write("mv", "pear", converge::bytes()));
  b.merge("mv", a.mv_write("mv", "apple", converge::bytes()));
  CHECK(a.mv("mv").siblings.size() == 2);
  bool threw = false;
  try {
    a.mv_resolve("mv", [](const std::vector<converge::sibling> &) -> converge::bytes {
      throw std::runtime_error("cannot merge");
    });
  } catch (const std::runtime_error &e) {
    threw = std::string(e.what()) == "cannot merge";
  }
  CHECK(threw && a.mv("mv").siblings.size() == 2);
  auto delta = a.mv_resolve("mv", [](const std::vector<converge::sibling> &s) {
    std::string joined;
    for (const auto &x : s)
      joined += (joined.empty() ? "" : "+") + converge::to_string(x.value);
    return converge::bytes(joined.begin(), joined.end());
  });
  CHECK(delta.has_value());
  b.merge("mv", *delta);
  CHECK(b.mv("mv").siblings.size() == 1);
  CHECK(converge::to_string(b.mv("mv").siblings[0].value) == "apple+pear");
  CHECK(!a.mv_resolve("mv", [](const std::vector<converge::sibling> &) {
           return converge::bytes();
         }).has_value());

  // Batches: deltas without per-delta allocations.
  converge::batch batch;
  batch.increment("hits", 1).pn_add("pn", 1).gset_add("gs", "y").orset_add("cart", "tea");
  batch.lww_set("lww", "v2").fww_set("fww", "f2").twop_add("tp2", "z");
  batch.mv_write("mv", "kiwi", a.mv("mv").context);
  batch.orset_remove_observed("cart", "zzz", converge::bytes()).orset_remove("cart", "zzz");
  CHECK(batch.size() == 10);
  converge::deltas ds = a.write(batch);
  CHECK(ds.size() == 10 && ds[0].first == "hits");
  converge::batch remote;
  for (size_t i = 0; i < ds.size(); i++)
    remote.merge(converge::byte_view(ds[i].first), converge::byte_view(ds[i].second));
  b.apply(remote);
  CHECK(b.counter("hits") == 4);

  // Converged: equal roots, byte-equal states for every key.
  cvg_root_t ra = a.root(), rb = b.root();
  CHECK(ra.count == rb.count && std::memcmp(ra.hash, rb.hash, 16) == 0);
  CHECK(a.verify() && b.verify());
  {
    // Iterators keep the store open: scoped so they are gone before close.
    converge::key_iterator it = a.keys();
    size_t n = 0;
    while (auto k = it.next()) {
      CHECK(a.state(k->first) == b.state(k->first));
      CHECK(k->second == a.key_type(k->first));
      n++;
    }
    CHECK(n == ra.count);
    auto f = b.keys("f");
    CHECK(f.next()->first == "fww" && !f.next().has_value());
  }
  CHECK(a.version_vector() == b.version_vector());
  a.settle();
  a.flush();
  a.sync_wal();
  a.increment("big", UINT64_MAX);
  CHECK(status_of([&] { a.counter("big"); }) == CVG_STATUS_OVERFLOW);
  CHECK(a.counter_wide("big").lo == UINT64_MAX && a.counter_wide("big").hi == 0);

  // Errors carry their status; nothing changes.
  CHECK(status_of_wrong_type(a) == CVG_STATUS_WRONG_TYPE);
  CHECK(status_of([&] { a.merge("cart", "junk"); }) == CVG_STATUS_CORRUPT_INPUT);
  CHECK(status_of([&] { a.counter("cart"); }) == CVG_STATUS_WRONG_TYPE);
  CHECK(status_of([&] { converge::options().durability(7); }) ==
        CVG_STATUS_INVALID_ARGUMENT);
  CHECK(status_of([&] { converge::engine again(base + "/a"); }) == CVG_STATUS_STORAGE);
  CHECK(a.key_type("nope") == CVG_CRDT_NONE && !a.state("nope").has_value());

  // Move-only handles: a moved-from engine is empty; close() reports.
  converge::engine moved(std::move(a));
  CHECK(moved.get() != nullptr && a.get() == nullptr);
  CHECK(status_of([&] { a.flush(); }) == CVG_STATUS_NULL_POINTER);
  moved.close();
  b.close();
  b.close(); // closing an empty engine is a no-op
  std::printf("converge C++ wrapper tests: 1 passed, 0 failed\n");
  return 0;
}
