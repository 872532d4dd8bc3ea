// The shardrec subcommands. Each takes its arguments after the subcommand name and returns the
// process exit code; errors are thrown as shardrec::Error and reported by main().
#pragma once

namespace shardrec::cli {

int cmd_prep(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_landscape(int argc, char** argv);
int cmd_plan(int argc, char** argv);
int cmd_recommend(int argc, char** argv);
int cmd_similar_items(int argc, char** argv);

}  // namespace shardrec::cli
