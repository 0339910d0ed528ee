/* A shopping cart (an OR-Set) edited on two replicas during a network
 * partition, then converged by exchanging deltas.
 *
 *   ./cart <empty directory>
 *
 * Compile lines: docs/C_API.md. */
#include "converge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUTBOX 16

/* Deltas a replica produced and has not shipped yet. */
struct outbox {
  cvg_bytes_t deltas[MAX_OUTBOX];
  size_t len;
};

static void die(cvg_status_t st, const char *what) {
  char msg[256];
  cvg_last_error_message(msg, sizeof msg);
  fprintf(stderr, "%s failed: %s: %s\n", what, cvg_status_name(st), msg);
  exit(1);
}

static void check(cvg_status_t st, const char *what) {
  if (st != CVG_STATUS_OK)
    die(st, what);
}

static cvg_engine_t *open_replica(const char *dir, const char *name, uint8_t id) {
  char path[1024];
  uint8_t replica[16];
  cvg_engine_t *e = NULL;
  cvg_options_t *opts = cvg_options_new();
  memset(replica, id, sizeof replica);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  check(cvg_options_set_replica_id(opts, replica, sizeof replica), "set replica id");
  check(cvg_engine_open(path, opts, &e), "open");
  cvg_options_free(opts);
  return e;
}

static cvg_bytes_t *next_slot(struct outbox *o) {
  if (o->len == MAX_OUTBOX) {
    fprintf(stderr, "outbox full\n");
    exit(1);
  }
  return &o->deltas[o->len++];
}

static void add(const cvg_engine_t *e, struct outbox *o, const char *item) {
  check(cvg_engine_orset_add(e, (const uint8_t *)"cart", 4, (const uint8_t *)item,
                             strlen(item), next_slot(o)),
        "add");
}

static void remove_item(const cvg_engine_t *e, struct outbox *o, const char *item) {
  check(cvg_engine_orset_remove(e, (const uint8_t *)"cart", 4, (const uint8_t *)item,
                                strlen(item), next_slot(o)),
        "remove");
}

/* Deliver every delta in `o` to `to`, then empty the outbox. */
static void ship(struct outbox *o, const cvg_engine_t *to) {
  size_t i;
  for (i = 0; i < o->len; i++) {
    /* A remove that removed nothing has no delta: (NULL, 0). */
    if (o->deltas[i].len == 0)
      continue;
    check(cvg_engine_merge(to, (const uint8_t *)"cart", 4, o->deltas[i].ptr,
                           o->deltas[i].len),
          "merge");
    cvg_bytes_free(&o->deltas[i]);
  }
  o->len = 0;
}

static void print_cart(const char *who, const cvg_engine_t *e) {
  cvg_list_t *items = NULL;
  size_t i;
  check(cvg_engine_set_members(e, (const uint8_t *)"cart", 4, &items, NULL), "read");
  printf("%s:", who);
  for (i = 0; i < cvg_list_len(items); i++) {
    cvg_slice_t item;
    check(cvg_list_get(items, i, &item), "item");
    printf(" %.*s", (int)item.len, (const char *)item.ptr);
  }
  printf("\n");
  cvg_list_free(items);
}

int main(int argc, char **argv) {
  struct outbox from_a = {{{NULL, 0}}, 0}, from_b = {{{NULL, 0}}, 0};
  cvg_engine_t *a, *b;
  cvg_root_t ra, rb;

  if (argc != 2) {
    fprintf(stderr, "usage: %s <empty directory>\n", argv[0]);
    return 2;
  }
  a = open_replica(argv[1], "phone", 0xA1);
  b = open_replica(argv[1], "laptop", 0xB2);

  /* Connected: the phone fills the cart, the laptop hears about it. */
  add(a, &from_a, "milk");
  add(a, &from_a, "tea");
  ship(&from_a, b);
  print_cart("before the partition, laptop", b);

  /* Partitioned: both edit the cart. */
  remove_item(a, &from_a, "tea"); /* the phone drops tea ...           */
  add(a, &from_a, "eggs");
  remove_item(b, &from_b, "milk"); /* ... the laptop drops milk,        */
  add(b, &from_b, "tea");          /* and adds tea again: add wins      */
  add(b, &from_b, "bread");
  print_cart("during the partition, phone ", a);
  print_cart("during the partition, laptop", b);

  /* Healed: exchange the deltas (order does not matter). */
  ship(&from_b, a);
  ship(&from_a, b);
  print_cart("after the partition, phone  ", a);
  print_cart("after the partition, laptop ", b);
  check(cvg_engine_root(a, &ra), "root");
  check(cvg_engine_root(b, &rb), "root");
  printf("replicas converged: %s\n",
         ra.count == rb.count && memcmp(ra.hash, rb.hash, 16) == 0 ? "yes" : "no");

  check(cvg_engine_close(a), "close");
  check(cvg_engine_close(b), "close");
  return 0;
}
