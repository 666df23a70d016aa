#include "golden/golden.h"
int golden_run_t5_tokenizer(golden_case *gc);
int golden_run_t5_tokenizer(golden_case *gc) { (void)gc; return -1; }
