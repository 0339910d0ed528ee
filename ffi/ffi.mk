# C ABI: the generated header, the C/C++ test suite and the examples.
# Included by the top-level Makefile, which defines CARGO, TARGET_DIR and
# ROOT.
#
#   make header        regenerate include/converge.h with cbindgen
#   make check-header  fail if include/converge.h differs from a fresh one
#   make test-c        build libconverge and run the C/C++ suite (run.sh)
#   make examples-c    build and run ffi/examples
#
# cbindgen is pinned to one version and installed once per target
# directory (cached like the rest of the build).

CBINDGEN_VERSION := 0.29.4
CBINDGEN_ROOT := $(TARGET_DIR)/tools/cbindgen-$(CBINDGEN_VERSION)
CBINDGEN := $(CBINDGEN_ROOT)/bin/cbindgen
FFI_LIBDIR := $(TARGET_DIR)/debug
FFI_OUT := $(TARGET_DIR)/ffi-tests
# The workspace version ([workspace.package] in Cargo.toml): what
# cvg_version() and the CONVERGE_VERSION_* macros must say.
FFI_VERSION := $(shell sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' $(ROOT)/Cargo.toml)

.PHONY: header check-header ffi-lib test-c examples-c

$(CBINDGEN):
	CARGO_TARGET_DIR=$(TARGET_DIR)/tools/cbindgen-build \
	  $(CARGO) install cbindgen --version =$(CBINDGEN_VERSION) --locked --root $(CBINDGEN_ROOT)

header: $(CBINDGEN)
	cd $(ROOT) && $(CBINDGEN) --config ffi/cbindgen.toml --output include/converge.h ffi

check-header: $(CBINDGEN)
	@tmp=$$(mktemp --suffix=.h) && \
	cd $(ROOT) && $(CBINDGEN) --config ffi/cbindgen.toml --output $$tmp ffi && \
	if diff -u include/converge.h $$tmp; then rm -f $$tmp; echo "include/converge.h is up to date"; \
	else rm -f $$tmp; echo "include/converge.h is stale: run 'make header' and commit it" >&2; exit 1; fi

# The whole workspace selection (not -p converge-ffi): see CARGO_SEL.
ffi-lib: setup
	$(CARGO) build $(CARGO_SEL)

test-c: ffi-lib
	@test -n "$(FFI_VERSION)" || { echo "no version under [workspace.package] in Cargo.toml" >&2; exit 1; }
	bash $(ROOT)/ffi/tests/run.sh $(FFI_LIBDIR) $(FFI_OUT) $(FFI_VERSION)

examples-c: ffi-lib
	@mkdir -p $(FFI_OUT)/examples
	$(CC) -std=c11 -Wall -Wextra -Werror -I$(ROOT)/include $(ROOT)/ffi/examples/cart.c \
	  -L$(FFI_LIBDIR) -lconverge -Wl,-rpath,$(FFI_LIBDIR) -o $(FFI_OUT)/examples/cart
	$(CXX) -std=c++17 -Wall -Wextra -Werror -I$(ROOT)/include $(ROOT)/ffi/examples/cart.cpp \
	  -L$(FFI_LIBDIR) -lconverge -Wl,-rpath,$(FFI_LIBDIR) -o $(FFI_OUT)/examples/cart-cpp
	@dir=$$(mktemp -d) && $(FFI_OUT)/examples/cart $$dir/c && $(FFI_OUT)/examples/cart-cpp $$dir/cpp; \
	  rc=$$?; rm -rf $$dir; exit $$rc

TEST_TARGETS += check-header test-c
