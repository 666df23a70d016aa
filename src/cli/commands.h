/*
 * The CLI's subcommands.  Each lives in its own file under src/cli/ and takes the
 * arguments after its name (argv[0] is the subcommand).  Exit codes: 0 success,
 * 1 bad input or failure (a one-line message on stderr), 2 bad usage, 3 unknown
 * model family (tessera info), 77 not implemented yet (tessera golden).
 */
#ifndef TS_CLI_COMMANDS_H
#define TS_CLI_COMMANDS_H

int cmd_convert(int argc, char **argv);
int cmd_golden(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_upscale(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_seams(int argc, char **argv);
int cmd_vae_decode(int argc, char **argv);
int cmd_generate(int argc, char **argv);

#endif
