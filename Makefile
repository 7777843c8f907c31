# mimscale build. `make` builds build/mimscale; `make test` builds and runs
# every tests/test_*.c (exit 0 pass, 77 skip, other fail); `make SAN=1 test`
# does the same under AddressSanitizer + UBSan in build-san/.
CC      ?= cc
SAN     ?= 0
ARCH    ?= -march=native
OPENBLAS_DIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp

ifeq ($(SAN),1)
BUILD   := build-san
OPT     := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build
OPT     := -O3 -g
endif

CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror=implicit-function-declaration -fno-math-errno -fno-trapping-math \
           $(OPT) $(ARCH) -fopenmp -Isrc
LDLIBS  := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lgsl -lcjson -ljpeg -lpng -lz -lm -lpthread
LDFLAGS := $(OPT) -fopenmp
# GSL (the study report's power-law fit, src/study/fit.c) is linked without
# its own -lgslcblas: OpenBLAS, earlier on the line, provides cblas_* for
# GSL as for everything else (libgsl's DT_NEEDED libgslcblas loads after
# it, so its copies are never the ones bound).

# MPI (data-parallel training) when mpicc is found; off under sanitizers
# (OpenMPI's own allocations would drown LeakSanitizer's report).
MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(SAN),1)
MPI := 0
endif
ifeq ($(MPI),1)
CFLAGS  += -DMIM_MPI $(shell mpicc --showme:compile)
LDLIBS  += $(shell mpicc --showme:link)
endif

# oneDNN (the bf16 matmul backend, src/ops/matmul_bf16.c) when its header is
# installed (Debian: libdnnl-dev); without it bf16 mode is emulated.
DNNL ?= $(if $(wildcard /usr/include/oneapi/dnnl/dnnl.h),1,0)
ifeq ($(DNNL),1)
CFLAGS  += -DMIM_DNNL
LDLIBS  += -ldnnl
endif

LIB_SRC  := $(filter-out src/cli/%,$(wildcard src/*/*.c))
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
HEADERS  := $(wildcard src/*/*.h) $(wildcard tests/*.h)

.PHONY: all test clean
all: $(BUILD)/mimscale $(TESTS)

# the fused attention's vector kernels: a * b + c as one FMA (ISO C mode turns contraction off)
$(BUILD)/src/ops/attention.o: CFLAGS += -ffp-contract=fast
$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libmimscale.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mimscale: $(CLI_OBJ) $(BUILD)/libmimscale.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libmimscale.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(BUILD)/libmimscale.a -o $@ $(LDLIBS)

test: all
	MIM_BUILD=$(BUILD) sh tests/run_tests.sh $(TESTS)

clean:
	rm -rf build build-san

BENCH_SRC := $(wildcard bench/*.c)
BENCHES   := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
.PHONY: bench
bench: $(BENCHES)
$(BUILD)/bench/%: bench/%.c $(BUILD)/libmimscale.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libmimscale.a -o $@ $(LDLIBS)
