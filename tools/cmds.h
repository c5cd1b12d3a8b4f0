/* Sub-commands of the pinfer CLI. Each returns the process exit code (0 success, 1 error, 2
 * usage) and prints its own one-line error ("pinfer run: ...") on failure. */
#ifndef PF_TOOLS_CMDS_H
#define PF_TOOLS_CMDS_H

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_iobench(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_plan(int argc, char **argv);

#endif
