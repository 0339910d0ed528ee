// The cart example of cart.c, with the C++ wrapper (include/converge.hpp):
// a shopping cart (an OR-Set) edited on two replicas during a network
// partition, then converged by exchanging deltas.
//
//   ./cart_cpp <empty directory>
//
// Compile lines: docs/C_API.md.
#include "converge.hpp"

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

using converge::bytes;

static converge::engine open_replica(const std::string &dir, const char *name, uint8_t id) {
  converge::replica_id r{};
  r.fill(id);
  converge::options o;
  o.replica(r);
  return converge::engine(dir + "/" + name, o);
}

static void ship(std::vector<bytes> &outbox, const converge::engine &to) {
  for (const bytes &delta : outbox)
    to.merge("cart", delta);
  outbox.clear();
}

static void print_cart(const char *who, const converge::engine &e) {
  std::cout << who << ":";
  for (const bytes &item : e.members("cart").members)
    std::cout << " " << converge::to_string(item);
  std::cout << "\n";
}

int main(int argc, char **argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " <empty directory>\n";
    return 2;
  }
  try {
    converge::engine phone = open_replica(argv[1], "phone", 0xA1);
    converge::engine laptop = open_replica(argv[1], "laptop", 0xB2);
    std::vector<bytes> from_phone, from_laptop;

    // Connected: the phone fills the cart, the laptop hears about it.
    from_phone.push_back(phone.orset_add("cart", "milk"));
    from_phone.push_back(phone.orset_add("cart", "tea"));
    ship(from_phone, laptop);
    print_cart("before the partition, laptop", laptop);

    // Partitioned: both edit the cart.
    // Each remove takes an item in the cart, so each has a delta (a remove
    // of a non-member gives std::nullopt).
    from_phone.push_back(phone.orset_remove("cart", "tea").value());
    from_phone.push_back(phone.orset_add("cart", "eggs"));
    from_laptop.push_back(laptop.orset_remove("cart", "milk").value());
    from_laptop.push_back(laptop.orset_add("cart", "tea")); // add wins
    from_laptop.push_back(laptop.orset_add("cart", "bread"));
    print_cart("during the partition, phone ", phone);
    print_cart("during the partition, laptop", laptop);

    // Healed: exchange the deltas (order does not matter).
    ship(from_laptop, phone);
    ship(from_phone, laptop);
    print_cart("after the partition, phone  ", phone);
    print_cart("after the partition, laptop ", laptop);
    cvg_root_t a = phone.root(), b = laptop.root();
    bool same = a.count == b.count && std::memcmp(a.hash, b.hash, 16) == 0;
    std::cout << "replicas converged: " << (same ? "yes" : "no") << "\n";
    phone.close();
    laptop.close();
  } catch (const converge::error &e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
