/* ctl_complete.c - etcdctl's shell completion: the `completion` command
 * that prints a bash, zsh, fish or PowerShell script, and the hidden
 * `__complete` / `__completeNoDesc` command those scripts run at Tab.
 *
 * `__complete WORD...` answers as cobra 1.6's "V2" completion does for
 * etcdctl 3.4.23: the candidates for the last word, one a line as
 * "name<TAB>description", then ":<directive>" on stdout and the
 * directive's name on stderr.  It walks the real command tree and flag
 * tables (ctl.c's lookup and pflag parser), so what it offers follows the
 * commands as they are.  The scripts are our own; since the protocol is
 * cobra's, the scripts etcdctl generates work with this binary and ours
 * with etcdctl.
 *
 * Not here: value completion for particular flags (etcdctl registers none,
 * so a flag's value is left to the shell's file names) and cobra's
 * "active help" lines (etcdctl has none to print).
 */
#include "ctl.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cobra's ShellCompDirective, a set of bits named here from bit 0 up:
 * 1 error, 2 no space after the word, 4 no file names, 8 the candidates
 * are file extensions, 16 directories only.  etcdctl's answers are the
 * default (0) or 4. */
enum { DIR_DEFAULT = 0, DIR_NO_FILE = 4 };
static const char *const directive_names[] = {
    "ShellCompDirectiveError", "ShellCompDirectiveNoSpace", "ShellCompDirectiveNoFileComp",
    "ShellCompDirectiveFilterFileExt", "ShellCompDirectiveFilterDirs",
};

/* The candidates gathered for one request. */
struct cands {
    struct mem_buf b; /* each candidate NUL-terminated, one after another */
    size_t n;
};

static int complete_run(struct ctl_cmd *cmd, int argc, char **argv);
static int script_run(struct ctl_cmd *cmd, int argc, char **argv);
static void comp_error(const struct mem_buf *msg);
static int get_completions(char **args, int argc, struct cands *out, struct mem_buf *err);
static int help_args(struct cands *out, char **args, int n, const char *to_complete);
static void add_subcommands(struct cands *out, const struct ctl_cmd *c, const char *prefix);
static void add_flag_names(struct cands *out, struct ctl_cmd *c, const char *prefix);
static void cands_add(struct cands *c, const char *name, size_t name_len, const char *desc);
static size_t cmd_name_len(const struct ctl_cmd *c);
static bool available(const struct ctl_cmd *c);
static bool any_available(const struct ctl_cmd *c);
static bool is_help_cmd(const struct ctl_cmd *c);
static bool takes_no_files(const struct ctl_cmd *c);
static bool is_flag_arg(const char *s);
static void go_list(struct mem_buf *b, char **v, int n);

/* ---- the commands ---- */

static bool no_desc;
static struct ctl_flag script_flags[] = {
    {"no-descriptions", 0, CTL_BOOL, "false", "disable completion descriptions", &no_desc},
    {0},
};

static struct ctl_cmd completion_bash = {
    .use = "bash",
    .short_desc = "Generate the autocompletion script for bash",
    .long_desc = "Generate the autocompletion script for the bash shell.\n"
                 "\n"
                 "This script depends on the 'bash-completion' package.\n"
                 "If it is not installed already, you can install it via your OS's package manager.\n"
                 "\n"
                 "To load completions in your current shell session:\n"
                 "\n"
                 "\tsource <(etcdctl completion bash)\n"
                 "\n"
                 "To load completions for every new session, execute once:\n"
                 "\n"
                 "#### Linux:\n"
                 "\n"
                 "\tetcdctl completion bash > /etc/bash_completion.d/etcdctl\n"
                 "\n"
                 "#### macOS:\n"
                 "\n"
                 "\tetcdctl completion bash > $(brew --prefix)/etc/bash_completion.d/etcdctl\n"
                 "\n"
                 "You will need to start a new shell for this setup to take effect.\n",
    .flags = script_flags,
    .run = script_run,
    .no_flags_in_use = true,
};

static struct ctl_cmd completion_fish = {
    .use = "fish",
    .short_desc = "Generate the autocompletion script for fish",
    .long_desc = "Generate the autocompletion script for the fish shell.\n"
                 "\n"
                 "To load completions in your current shell session:\n"
                 "\n"
                 "\tetcdctl completion fish | source\n"
                 "\n"
                 "To load completions for every new session, execute once:\n"
                 "\n"
                 "\tetcdctl completion fish > ~/.config/fish/completions/etcdctl.fish\n"
                 "\n"
                 "You will need to start a new shell for this setup to take effect.\n",
    .flags = script_flags,
    .run = script_run,
};

static struct ctl_cmd completion_powershell = {
    .use = "powershell",
    .short_desc = "Generate the autocompletion script for powershell",
    .long_desc = "Generate the autocompletion script for powershell.\n"
                 "\n"
                 "To load completions in your current shell session:\n"
                 "\n"
                 "\tetcdctl completion powershell | Out-String | Invoke-Expression\n"
                 "\n"
                 "To load completions for every new session, add the output of the above command\n"
                 "to your powershell profile.\n",
    .flags = script_flags,
    .run = script_run,
};

static struct ctl_cmd completion_zsh = {
    .use = "zsh",
    .short_desc = "Generate the autocompletion script for zsh",
    .long_desc = "Generate the autocompletion script for the zsh shell.\n"
                 "\n"
                 "If shell completion is not already enabled in your environment you will need\n"
                 "to enable it.  You can execute the following once:\n"
                 "\n"
                 "\techo \"autoload -U compinit; compinit\" >> ~/.zshrc\n"
                 "\n"
                 "To load completions in your current shell session:\n"
                 "\n"
                 "\tsource <(etcdctl completion zsh); compdef _etcdctl etcdctl\n"
                 "\n"
                 "To load completions for every new session, execute once:\n"
                 "\n"
                 "#### Linux:\n"
                 "\n"
                 "\tetcdctl completion zsh > \"${fpath[1]}/_etcdctl\"\n"
                 "\n"
                 "#### macOS:\n"
                 "\n"
                 "\tetcdctl completion zsh > $(brew --prefix)/share/zsh/site-functions/_etcdctl\n"
                 "\n"
                 "You will need to start a new shell for this setup to take effect.\n",
    .flags = script_flags,
    .run = script_run,
};

static struct ctl_cmd *const completion_subs[] = {
    &completion_bash, &completion_fish, &completion_powershell, &completion_zsh, NULL,
};

/* Not runnable: `etcdctl completion` prints its help. */
struct ctl_cmd ctl_cmd_completion = {
    .use = "completion",
    .short_desc = "Generate the autocompletion script for the specified shell",
    .long_desc = "Generate the autocompletion script for etcdctl for the specified shell.\n"
                 "See each sub-command's help for details on how to use the generated script.\n",
    .subs = completion_subs,
};

struct ctl_cmd ctl_cmd_complete = {
    .use = "__complete [command-line]",
    .short_desc = "Request shell completion choices for the specified command-line",
    .long_desc = "__complete is a special command that is used by the shell completion logic\n"
                 "to request completion choices for the specified command-line.",
    .run = complete_run,
    .alias = "__completeNoDesc",
    .hidden = true,
    .raw_args = true,
    .no_flags_in_use = true,
};

/* ---- the scripts ----
 * Each names the request command where it says @REQUEST@: __complete, or
 * __completeNoDesc for --no-descriptions. */

static const char bash_script[] =
    "# Tab completion of etcdctl for bash, as `etcdctl completion bash` prints it.\n"
    "#\n"
    "# Load it into the current shell with `source <(etcdctl completion bash)`.\n"
    "#\n"
    "# On Tab, the words up to the cursor go to `etcdctl __complete WORD...`,\n"
    "# which prints one candidate a line (\"name<TAB>description\") and then\n"
    "# \":N\", N adding up directives: 1 an error (offer nothing), 2 no space\n"
    "# after the word, 4 no file names when nothing matched, 8 the candidates\n"
    "# are file extensions to filter on, 16 offer directory names only.\n"
    "# Needs bash 4 or newer and nothing else (no bash-completion package).\n"
    "\n"
    "# Splits the line up to the cursor into the words the program expects:\n"
    "# bash cuts words at the COMP_WORDBREAKS characters (= and : among them),\n"
    "# so pieces that touch in the line are joined again.  Sets _etcdctl_words\n"
    "# (a local of the caller).\n"
    "_etcdctl_split_line()\n"
    "{\n"
    "    local line=${COMP_LINE:0:COMP_POINT} pos=0 i piece joined\n"
    "    _etcdctl_words=()\n"
    "    for ((i = 0; i <= COMP_CWORD; i++)); do\n"
    "        piece=${COMP_WORDS[i]-}\n"
    "        joined=$((i > 0))\n"
    "        while ((pos < ${#line})) && [[ ${line:pos:1} == [[:space:]] ]]; do\n"
    "            pos=$((pos + 1))\n"
    "            joined=0\n"
    "        done\n"
    "        # the word under the cursor counts only up to the cursor\n"
    "        if ((pos + ${#piece} > ${#line})); then\n"
    "            piece=${line:pos}\n"
    "        fi\n"
    "        pos=$((pos + ${#piece}))\n"
    "        if ((joined)); then\n"
    "            _etcdctl_words[${#_etcdctl_words[@]} - 1]+=$piece\n"
    "        else\n"
    "            _etcdctl_words+=(\"$piece\")\n"
    "        fi\n"
    "    done\n"
    "}\n"
    "\n"
    "# The word $1 with the shell's quoting taken off, in _etcdctl_plain (a\n"
    "# local of the caller).  Only\n"
    "# quotes and backslashes are handled: nothing is expanded or run.\n"
    "_etcdctl_unquote()\n"
    "{\n"
    "    local rest=$1 ch quote=\n"
    "    _etcdctl_plain=\n"
    "    if [[ $rest != *[\\'\\\"\\\\]* ]]; then\n"
    "        _etcdctl_plain=$rest\n"
    "        return\n"
    "    fi\n"
    "    while [[ -n $rest ]]; do\n"
    "        ch=${rest:0:1}\n"
    "        rest=${rest:1}\n"
    "        if [[ $quote == \"'\" ]]; then\n"
    "            if [[ $ch == \"'\" ]]; then quote=; else _etcdctl_plain+=$ch; fi\n"
    "        elif [[ $ch == '\\' ]]; then\n"
    "            if [[ $quote == '\"' && ${rest:0:1} != [\\\"\\\\\\$\\`] ]]; then\n"
    "                _etcdctl_plain+=$ch\n"
    "            else\n"
    "                _etcdctl_plain+=${rest:0:1}\n"
    "                rest=${rest:1}\n"
    "            fi\n"
    "        elif [[ $quote == '\"' ]]; then\n"
    "            if [[ $ch == '\"' ]]; then quote=; else _etcdctl_plain+=$ch; fi\n"
    "        elif [[ $ch == [\\'\\\"] ]]; then\n"
    "            quote=$ch\n"
    "        else\n"
    "            _etcdctl_plain+=$ch\n"
    "        fi\n"
    "    done\n"
    "}\n"
    "\n"
    "_etcdctl_complete()\n"
    "{\n"
    "    local w prog cur out line name desc head breaks i width=0 max directive=0 described=0\n"
    "    local -a args lines names descs _etcdctl_words\n"
    "    local _etcdctl_plain\n"
    "    COMPREPLY=()\n"
    "\n"
    "    _etcdctl_split_line\n"
    "    for w in \"${_etcdctl_words[@]}\"; do\n"
    "        _etcdctl_unquote \"$w\"\n"
    "        args+=(\"$_etcdctl_plain\")\n"
    "    done\n"
    "    prog=${args[0]}\n"
    "    [[ $prog == \"~/\"* ]] && prog=$HOME/${prog:2}\n"
    "    cur=${args[${#args[@]} - 1]}\n"
    "\n"
    "    out=$(\"$prog\" @REQUEST@ \"${args[@]:1}\" 2>/dev/null)\n"
    "    mapfile -t lines <<<\"$out\"\n"
    "    if [[ ${lines[${#lines[@]} - 1]} =~ ^:([0-9]+)$ ]]; then\n"
    "        directive=${BASH_REMATCH[1]}\n"
    "        unset \"lines[${#lines[@]} - 1]\"\n"
    "    fi\n"
    "\n"
    "    ((directive & 1)) && return 0\n"
    "    ((directive & 2)) && compopt -o nospace 2>/dev/null\n"
    "    ((directive & 4)) && compopt +o default 2>/dev/null\n"
    "\n"
    "    # for --flag=value the program answers with values\n"
    "    [[ $cur == -*=* ]] && cur=${cur#*=}\n"
    "\n"
    "    if ((directive & 8)); then\n"
    "        local exts=\n"
    "        for line in \"${lines[@]}\"; do\n"
    "            [[ -n $line ]] && exts+=${exts:+|}${line%%$'\\t'*}\n"
    "        done\n"
    "        compopt -o filenames 2>/dev/null\n"
    "        mapfile -t COMPREPLY < <(compgen -d -- \"$cur\"; compgen -f -- \"$cur\" | grep -E \"\\.($exts)\\$\")\n"
    "        return 0\n"
    "    fi\n"
    "    if ((directive & 16)); then\n"
    "        compopt -o filenames 2>/dev/null\n"
    "        if [[ -n ${lines[0]} ]]; then\n"
    "            mapfile -t COMPREPLY < <(cd -- \"${lines[0]}\" 2>/dev/null && compgen -d -- \"$cur\")\n"
    "        else\n"
    "            mapfile -t COMPREPLY < <(compgen -d -- \"$cur\")\n"
    "        fi\n"
    "        return 0\n"
    "    fi\n"
    "\n"
    "    for line in \"${lines[@]}\"; do\n"
    "        [[ -z $line ]] && continue\n"
    "        name=${line%%$'\\t'*}\n"
    "        [[ $name == \"$cur\"* ]] || continue\n"
    "        desc=\n"
    "        [[ $line == *$'\\t'* ]] && desc=${line#*$'\\t'}\n"
    "        [[ -n $desc ]] && described=1\n"
    "        names+=(\"$name\")\n"
    "        descs+=(\"$desc\")\n"
    "    done\n"
    "\n"
    "    # readline replaces only what follows the last = or : of the word\n"
    "    # when those break words\n"
    "    [[ $COMP_WORDBREAKS == *=* ]] && breaks+='='\n"
    "    [[ $COMP_WORDBREAKS == *:* ]] && breaks+=':'\n"
    "    if [[ -n $breaks && $cur == *[$breaks]* ]]; then\n"
    "        head=${cur%\"${cur##*[$breaks]}\"}\n"
    "        names=(\"${names[@]#\"$head\"}\")\n"
    "    fi\n"
    "\n"
    "    # descriptions only in a list to look at: never for a single match,\n"
    "    # nor when readline inserts the candidates themselves (menu-complete\n"
    "    # 37, insert-completions 42)\n"
    "    if ((${#names[@]} < 2 || !described)) || [[ ${COMP_TYPE-} == 37 || ${COMP_TYPE-} == 42 ]]; then\n"
    "        COMPREPLY=(\"${names[@]}\")\n"
    "        return 0\n"
    "    fi\n"
    "    for name in \"${names[@]}\"; do\n"
    "        ((${#name} > width)) && width=${#name}\n"
    "    done\n"
    "    max=$((${COLUMNS:-80} - width - 5))\n"
    "    for i in \"${!names[@]}\"; do\n"
    "        desc=${descs[i]}\n"
    "        if [[ -z $desc ]]; then\n"
    "            COMPREPLY+=(\"${names[i]}\")\n"
    "            continue\n"
    "        fi\n"
    "        ((max > 10 && ${#desc} > max)) && desc=\"${desc:0:max-3}...\"\n"
    "        printf -v line '%-*s  -- %s' \"$width\" \"${names[i]}\" \"$desc\"\n"
    "        COMPREPLY+=(\"$line\")\n"
    "    done\n"
    "}\n"
    "\n"
    "complete -o default -F _etcdctl_complete etcdctl\n";

static const char zsh_script[] =
    "#compdef etcdctl\n"
    "# Tab completion of etcdctl for zsh, as `etcdctl completion zsh` prints it.\n"
    "#\n"
    "# Either `source <(etcdctl completion zsh); compdef _etcdctl etcdctl`, or\n"
    "# save it as _etcdctl in a directory of $fpath before compinit runs.\n"
    "#\n"
    "# On Tab, the words up to the cursor go to `etcdctl __complete WORD...`,\n"
    "# which prints one candidate a line (\"name<TAB>description\") and then\n"
    "# \":N\", N adding up directives: 1 an error (offer nothing), 2 no space\n"
    "# after the word, 4 no file names when nothing matched, 8 the candidates\n"
    "# are file extensions to filter on, 16 offer directory names only.\n"
    "\n"
    "_etcdctl()\n"
    "{\n"
    "    local prog out line directive=0\n"
    "    local -a args lines specs exts nospace\n"
    "\n"
    "    # the words before the cursor's and the cursor's up to the cursor,\n"
    "    # quotes taken off\n"
    "    args=(\"${(@Q)words[1,CURRENT-1]}\" \"${(Q)PREFIX}\")\n"
    "    prog=${args[1]}\n"
    "    [[ $prog == '~/'* ]] && prog=$HOME/${prog#\\~/}\n"
    "\n"
    "    out=$(\"$prog\" @REQUEST@ \"${(@)args[2,-1]}\" 2>/dev/null)\n"
    "    lines=(\"${(@f)out}\")\n"
    "    if [[ ${lines[-1]} == :<-> ]]; then\n"
    "        directive=${lines[-1]#:}\n"
    "        lines[-1]=()\n"
    "    fi\n"
    "\n"
    "    (( directive & 1 )) && return 1\n"
    "    (( directive & 2 )) && nospace=(-S '')\n"
    "\n"
    "    # for --flag=value the program answers with values: the flag and its =\n"
    "    # stay as they are\n"
    "    [[ $PREFIX == -*=* ]] && compset -P 1 '*='\n"
    "\n"
    "    if (( directive & 8 )); then\n"
    "        for line in $lines; do\n"
    "            [[ -n $line ]] && exts+=(\"*.${line%%$'\\t'*}\")\n"
    "        done\n"
    "        _files -g \"(${(j:|:)exts})\"\n"
    "        return\n"
    "    fi\n"
    "    if (( directive & 16 )); then\n"
    "        if [[ -n ${lines[1]} ]]; then\n"
    "            _files -W \"${lines[1]}\" -/\n"
    "        else\n"
    "            _files -/\n"
    "        fi\n"
    "        return\n"
    "    fi\n"
    "\n"
    "    # _describe wants \"name:description\", a : in the name escaped\n"
    "    for line in $lines; do\n"
    "        [[ -z $line ]] && continue\n"
    "        if [[ $line == *$'\\t'* ]]; then\n"
    "            specs+=(\"${${line%%$'\\t'*}//:/\\\\:}:${line#*$'\\t'}\")\n"
    "        else\n"
    "            specs+=(\"${line//:/\\\\:}\")\n"
    "        fi\n"
    "    done\n"
    "    _describe -t etcdctl-words 'etcdctl' specs $nospace && return 0\n"
    "    (( directive & 4 )) && return 1\n"
    "    _files\n"
    "}\n"
    "\n"
    "# Loaded from $fpath, the file is the body of _etcdctl: define the real\n"
    "# function and run it.  Sourced, register it when compinit has been run.\n"
    "if [[ ${funcstack[1]} == _etcdctl ]]; then\n"
    "    _etcdctl \"$@\"\n"
    "elif (( $+functions[compdef] )); then\n"
    "    compdef _etcdctl etcdctl\n"
    "fi\n";

static const char fish_script[] =
    "# Tab completion of etcdctl for fish, as `etcdctl completion fish` prints it.\n"
    "#\n"
    "# Load it with `etcdctl completion fish | source`, or save it as\n"
    "# ~/.config/fish/completions/etcdctl.fish.\n"
    "#\n"
    "# On Tab, the words up to the cursor go to `etcdctl __complete WORD...`,\n"
    "# which prints one candidate a line (\"name<TAB>description\", as fish\n"
    "# itself takes them) and then \":N\", N adding up directives: 1 an error\n"
    "# (offer nothing), 2 no space after the word (fish decides that itself),\n"
    "# 4 no file names when nothing matched, 8 the candidates are file\n"
    "# extensions to filter on, 16 offer directory names only.\n"
    "\n"
    "function __etcdctl_complete\n"
    "    # the words before the cursor's, unquoted, and the cursor's up to it\n"
    "    set -l args (commandline -opc)\n"
    "    set -l cur (commandline -ct)\n"
    "    set -l plain (string unescape -- \"$cur\")\n"
    "    and set cur \"$plain\"\n"
    "    set -l prog $args[1]\n"
    "    string match -q -- '~/*' $prog\n"
    "    and set prog $HOME/(string sub -s 3 -- $prog)\n"
    "\n"
    "    set -l lines ($prog @REQUEST@ $args[2..-1] \"$cur\" 2>/dev/null)\n"
    "    set -l directive 0\n"
    "    if string match -qr '^:[0-9]+$' -- $lines[-1]\n"
    "        set directive (string sub -s 2 -- $lines[-1])\n"
    "        set -e lines[-1]\n"
    "    end\n"
    "    test (math \"bitand($directive, 1)\") -ne 0\n"
    "    and return\n"
    "\n"
    "    # for --flag=value the program answers with values, fish wants the\n"
    "    # whole word back\n"
    "    set -l head\n"
    "    if string match -q -- '-*=*' $cur\n"
    "        set head (string replace -r '=.*' '=' -- $cur)\n"
    "        set cur (string replace -r '^[^=]*=' '' -- $cur)\n"
    "    end\n"
    "\n"
    "    if test (math \"bitand($directive, 8)\") -ne 0\n"
    "        set -l exts\n"
    "        for line in $lines\n"
    "            test -n \"$line\"\n"
    "            and set -a exts (string escape --style=regex -- (string split -m 1 \\t -- $line)[1])\n"
    "        end\n"
    "        __fish_complete_path $cur | string match -r -- '(?:/|\\.(?:'(string join '|' -- $exts)'))$'\n"
    "        return\n"
    "    end\n"
    "    if test (math \"bitand($directive, 16)\") -ne 0\n"
    "        if test -n \"$lines[1]\"\n"
    "            pushd $lines[1]; and __fish_complete_directories $cur; and popd\n"
    "        else\n"
    "            __fish_complete_directories $cur\n"
    "        end\n"
    "        return\n"
    "    end\n"
    "\n"
    "    set -l found 0\n"
    "    for line in $lines\n"
    "        test -n \"$line\"\n"
    "        or continue\n"
    "        printf '%s%s\\n' $head $line\n"
    "        set found 1\n"
    "    end\n"
    "    if test $found = 0; and test (math \"bitand($directive, 4)\") -eq 0\n"
    "        __fish_complete_path $cur | string replace -r -- '^' \"$head\"\n"
    "    end\n"
    "end\n"
    "\n"
    "complete -c etcdctl -e\n"
    "complete -c etcdctl -f -a '(__etcdctl_complete)'\n";

static const char powershell_script[] =
    "# Tab completion of etcdctl for PowerShell, as `etcdctl completion powershell` prints it.\n"
    "#\n"
    "# Load it with `etcdctl completion powershell | Out-String | Invoke-Expression`.\n"
    "#\n"
    "# On Tab, the words up to the cursor go to `etcdctl __complete WORD...`,\n"
    "# which prints one candidate a line (\"name<TAB>description\") and then\n"
    "# \":N\", N adding up directives: 1 an error (offer nothing), 2 no space\n"
    "# after the word, 4 no file names when nothing matched, 8 the candidates\n"
    "# are file extensions to filter on, 16 offer directory names only (these\n"
    "# two are left to PowerShell's own path completion).\n"
    "\n"
    "Register-ArgumentCompleter -Native -CommandName 'etcdctl' -ScriptBlock {\n"
    "    param($WordToComplete, $CommandAst, $CursorPosition)\n"
    "\n"
    "    # the words before the cursor, unquoted, and the one under it up to it\n"
    "    $words = @()\n"
    "    $lastEnd = -1\n"
    "    foreach ($el in $CommandAst.CommandElements) {\n"
    "        $start = $el.Extent.StartOffset\n"
    "        if ($start -ge $CursorPosition) { break }\n"
    "        $text = $el.Extent.Text\n"
    "        if ($el.Extent.EndOffset -gt $CursorPosition) {\n"
    "            $text = $text.Substring(0, $CursorPosition - $start)\n"
    "        } elseif ($el -is [System.Management.Automation.Language.StringConstantExpressionAst]) {\n"
    "            $text = $el.Value\n"
    "        }\n"
    "        $words += $text\n"
    "        $lastEnd = [Math]::Min($el.Extent.EndOffset, $CursorPosition)\n"
    "    }\n"
    "    if ($lastEnd -lt $CursorPosition) { $words += '' }\n"
    "    $prog = $words[0]\n"
    "    $cur = $words[-1]\n"
    "\n"
    "    # Windows PowerShell and the Legacy argument passing drop empty\n"
    "    # arguments on their way to a program: write them as \"\" there\n"
    "    $legacy = -not (Test-Path variable:PSNativeCommandArgumentPassing) -or\n"
    "        $PSNativeCommandArgumentPassing -eq 'Legacy'\n"
    "    $pass = @(foreach ($w in ($words | Select-Object -Skip 1)) {\n"
    "        if ($legacy -and $w -eq '') { '\"\"' } else { $w }\n"
    "    })\n"
    "\n"
    "    $lines = @(& $prog @REQUEST@ @pass 2>$null)\n"
    "    $directive = 0\n"
    "    if ($lines.Count -gt 0 -and $lines[-1] -match '^:(\\d+)$') {\n"
    "        $directive = [int]$Matches[1]\n"
    "        $lines = @($lines | Select-Object -SkipLast 1)\n"
    "    }\n"
    "    if ($directive -band 1) { return }\n"
    "    if ($directive -band (8 + 16)) { return }\n"
    "\n"
    "    # for --flag=value the program answers with values: put the flag back\n"
    "    $head = ''\n"
    "    if ($cur -like '-*=*') {\n"
    "        $head = $cur.Substring(0, $cur.IndexOf('=') + 1)\n"
    "        $cur = $cur.Substring($head.Length)\n"
    "    }\n"
    "\n"
    "    $found = @(foreach ($line in $lines) {\n"
    "        if (-not $line) { continue }\n"
    "        $name, $desc = $line -split \"`t\", 2\n"
    "        if ($name.StartsWith($cur, [StringComparison]::Ordinal)) { , @($name, $desc) }\n"
    "    })\n"
    "    $results = @(foreach ($f in $found) {\n"
    "        $name, $desc = $f\n"
    "        $text = $head + $name\n"
    "        if ($text -match '[\\s''\"`$;,@#{}()|<>&]') {\n"
    "            $text = \"'\" + ($text -replace \"'\", \"''\") + \"'\"\n"
    "        }\n"
    "        # a single match is the whole word: go on after it\n"
    "        if ($found.Count -eq 1 -and -not ($directive -band 2)) { $text += ' ' }\n"
    "        if (-not $desc) { $desc = $name }\n"
    "        [System.Management.Automation.CompletionResult]::new($text, $name, 'ParameterValue', $desc)\n"
    "    })\n"
    "    if ($results.Count -eq 0 -and ($directive -band 4)) {\n"
    "        # an empty answer keeps PowerShell from offering file names\n"
    "        return ''\n"
    "    }\n"
    "    $results\n"
    "}\n";

#define REQUEST_MARK "@REQUEST@"

/* completion bash|fish|powershell|zsh: cobra's NoArgs, then the script */
static int script_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc > 0) {
        struct mem_buf m = {0};
        if (mem_buf_printf(&m, "unknown command ") < 0 || ctl_quote(&m, argv[0], strlen(argv[0])) < 0 ||
            mem_buf_printf(&m, " for \"etcdctl completion %.*s\"", (int)cmd_name_len(cmd), cmd->use) < 0 ||
            mem_buf_putc(&m, 0) < 0)
            ctl_exit(CTL_EXIT_ERROR);
        ctl_usage_fail(cmd, (const char *)m.data);
    }
    const char *text = cmd == &completion_bash ? bash_script
                       : cmd == &completion_zsh ? zsh_script
                       : cmd == &completion_fish ? fish_script
                                                 : powershell_script;
    const char *mark = strstr(text, REQUEST_MARK);
    ctl_write(text, (size_t)(mark - text));
    fputs(no_desc ? "__completeNoDesc" : "__complete", stdout);
    fputs(mark + strlen(REQUEST_MARK), stdout);
    return CTL_EXIT_SUCCESS;
}

/* ---- __complete ---- */

/* CompErrorln: on stderr, and appended to the file the scripts log to */
static void comp_error(const struct mem_buf *msg)
{
    fprintf(stderr, "[Debug] [Error] %.*s\n", (int)msg->len, (const char *)msg->data);
    const char *path = getenv("BASH_COMP_DEBUG_FILE");
    if (!path || !*path)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    struct mem_buf line = {0};
    /* a log line that cannot be written is not worth failing over */
    if (mem_buf_printf(&line, "[Debug] [Error] %.*s\n", (int)msg->len, (const char *)msg->data) == 0)
        (void)!write(fd, line.data, line.len);
    mem_buf_free(&line);
    close(fd);
}

static int complete_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc < 1) /* cobra's MinimumNArgs(1) */
        ctl_usage_fail(cmd, "requires at least 1 arg(s), only received 0");
    struct cands out = {0};
    struct mem_buf err = {0};
    int directive = get_completions(argv, argc, &out, &err);
    if (err.len)
        comp_error(&err);
    mem_buf_free(&err);

    /* one line each: without the description for __completeNoDesc, only
     * the first line of it, trimmed as Go's strings.TrimSpace does */
    const char *p = (const char *)out.b.data;
    for (size_t i = 0; i < out.n; i++) {
        size_t len = strlen(p);
        size_t keep = strcspn(p, cmd->called_by_alias ? "\t\n" : "\n");
        const char *s = p, *e = p + keep;
        while (s < e && strchr(" \t\n\v\f\r", *s))
            s++;
        while (e > s && strchr(" \t\n\v\f\r", e[-1]))
            e--;
        ctl_write(s, (size_t)(e - s));
        putchar('\n');
        p += len + 1;
    }
    mem_buf_free(&out.b);
    printf(":%d\n", directive);
    fflush(stdout);

    fputs("Completion ended with directive: ", stderr);
    if (directive == DIR_DEFAULT)
        fputs("ShellCompDirectiveDefault", stderr);
    bool first = true;
    for (size_t bit = 0; bit < sizeof directive_names / sizeof directive_names[0]; bit++) {
        if (directive & (1 << bit)) {
            fprintf(stderr, "%s%s", first ? "" : ", ", directive_names[bit]);
            first = false;
        }
    }
    fputc('\n', stderr);
    return CTL_EXIT_SUCCESS;
}

static void cands_add(struct cands *c, const char *name, size_t name_len, const char *desc)
{
    if (mem_buf_append(&c->b, name, name_len) < 0 || mem_buf_printf(&c->b, "\t%s", desc) < 0 ||
        mem_buf_putc(&c->b, 0) < 0)
        ctl_exit(CTL_EXIT_ERROR);
    c->n++;
}

static size_t cmd_name_len(const struct ctl_cmd *c)
{
    return strcspn(c->use, " ");
}

/* cobra's IsAvailableCommand: shown, and runnable or a group with
 * something to show */
static bool available(const struct ctl_cmd *c)
{
    if (c->hidden)
        return false;
    if (c->run)
        return true;
    for (size_t i = 0; c->subs && c->subs[i]; i++)
        if (available(c->subs[i]))
            return true;
    return false;
}

/* the root's "help", whose arguments are command names */
static bool is_help_cmd(const struct ctl_cmd *c)
{
    return c->parent && !c->parent->parent && cmd_name_len(c) == 4 && !strncmp(c->use, "help", 4);
}

/* cobra's NoFileCompletions, which its completion commands take */
static bool takes_no_files(const struct ctl_cmd *c)
{
    return c == &ctl_cmd_completion || c->parent == &ctl_cmd_completion;
}

/* Adds the available subcommands of c whose names start with prefix.
 * (cobra lists its help command explicitly; ours counts as available.) */
static void add_subcommands(struct cands *out, const struct ctl_cmd *c, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; c->subs && c->subs[i]; i++) {
        const struct ctl_cmd *s = c->subs[i];
        if (available(s) && pl <= cmd_name_len(s) && !strncmp(s->use, prefix, pl))
            cands_add(out, s->use, cmd_name_len(s), s->short_desc);
    }
}

static bool any_available(const struct ctl_cmd *c)
{
    for (size_t i = 0; c->subs && c->subs[i]; i++)
        if (available(c->subs[i]))
            return true;
    return false;
}

static int cmp_flag_name(const void *a, const void *b)
{
    return strcmp((*(struct ctl_flag *const *)a)->name, (*(struct ctl_flag *const *)b)->name);
}

#define MAX_FLAGS 64

struct flag_list {
    struct ctl_flag *f[MAX_FLAGS];
    size_t n;
};

static bool list_has(const struct flag_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->f[i]->name, name))
            return true;
    return false;
}

static void list_add(struct flag_list *l, struct ctl_flag *flags, const struct flag_list *except)
{
    for (struct ctl_flag *f = flags; f && f->name; f++)
        if (!list_has(l, f->name) && !(except && list_has(except, f->name)) && l->n < MAX_FLAGS)
            l->f[l->n++] = f;
}

static void add_flag(struct cands *out, const struct ctl_flag *f, const char *usage,
                     const char *prefix)
{
    char name[128];
    size_t pl = strlen(prefix);
    int len = snprintf(name, sizeof name, "--%s", f->name);
    if (len > 0 && (size_t)len < sizeof name && pl <= (size_t)len && !strncmp(name, prefix, pl))
        cands_add(out, name, (size_t)len, usage);
    name[0] = '-';
    name[1] = f->shorthand;
    if (f->shorthand && pl <= 2 && !strncmp(name, prefix, pl))
        cands_add(out, name, 2, usage);
}

/* Flag names starting with prefix: the inherited flags, then c's own
 * (with -h/--help), each set sorted by name; a flag already given is not
 * offered again unless it takes a list. */
static void add_flag_names(struct cands *out, struct ctl_cmd *c, const char *prefix)
{
    struct flag_list local = {0}, inherited = {0};
    list_add(&local, c->flags, NULL);
    list_add(&local, c->pflags, NULL);
    struct ctl_flag *help = ctl_flag_lookup(c, "help", 4);
    if (help && !list_has(&local, "help") && local.n < MAX_FLAGS)
        local.f[local.n++] = help;
    for (struct ctl_cmd *p = c->parent; p; p = p->parent)
        list_add(&inherited, p->pflags, &local);
    qsort(local.f, local.n, sizeof local.f[0], cmp_flag_name);
    qsort(inherited.f, inherited.n, sizeof inherited.f[0], cmp_flag_name);

    char help_usage[80];
    snprintf(help_usage, sizeof help_usage, "help for %.*s", (int)cmd_name_len(c), c->use);
    const struct flag_list *sets[] = {&inherited, &local};
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; i < sets[s]->n; i++) {
            const struct ctl_flag *f = sets[s]->f[i];
            if (f->changed && f->type != CTL_STRINGS)
                continue;
            add_flag(out, f, f == help ? help_usage : f->usage, prefix);
        }
    }
}

/* The help command's argument completion: the subcommands of the command
 * its arguments name so far. */
static int help_args(struct cands *out, char **args, int n, const char *to_complete)
{
    char **a = mem_arena_alloc(&ctl_arena, ((size_t)n + 1) * sizeof *a);
    if (!a)
        ctl_exit(CTL_EXIT_ERROR);
    memcpy(a, args, (size_t)n * sizeof *a);
    const char *unknown;
    struct ctl_cmd *c = ctl_find(a, &n, true, &unknown);
    if (!unknown)
        add_subcommands(out, c, to_complete);
    return DIR_NO_FILE;
}

/* pflag's guess that a word is a flag, used on the word before the cursor */
static bool is_flag_arg(const char *s)
{
    size_t l = strlen(s);
    return (l >= 3 && s[1] == '-') || (l >= 2 && s[0] == '-' && s[1] != '-');
}

/* Go's %v of a []string */
static void go_list(struct mem_buf *b, char **v, int n)
{
    (void)!mem_buf_putc(b, '[');
    for (int i = 0; i < n; i++)
        (void)!mem_buf_printf(b, "%s%s", i ? " " : "", v[i]);
    (void)!mem_buf_putc(b, ']');
}

/* cobra's getCompletions for args (the last one is the word being
 * completed): fills out, returns the directive, puts an error in err. */
static int get_completions(char **args, int argc, struct cands *out, struct mem_buf *err)
{
    const char *to_complete = args[argc - 1];
    int n = argc - 1;
    char **a = mem_arena_alloc(&ctl_arena, ((size_t)argc + 1) * sizeof *a);
    if (!a)
        ctl_exit(CTL_EXIT_ERROR);
    memcpy(a, args, (size_t)n * sizeof *a);
    const char *unknown;
    /* __complete is in the tree while it runs, so the words may name it */
    struct ctl_cmd *c = ctl_find(a, &n, true, &unknown);
    if (unknown) {
        (void)!mem_buf_printf(err, "Unable to find a command for arguments: ");
        go_list(err, args, argc - 1);
        return DIR_DEFAULT;
    }

    /* checkIfFlagCompletion: is the word a flag's value, as in "--flag=x",
     * or after a flag that takes one? */
    struct ctl_flag *flag = NULL;
    const char *bad = NULL;
    size_t bad_len = 0;
    if (!c->raw_args && !(to_complete[0] == '-' && !strchr(to_complete, '='))) {
        const char *orig = to_complete, *name = NULL;
        size_t len = 0;
        int trimmed = n;
        bool with_eq = false;
        if (to_complete[0] == '-') {
            const char *eq = strchr(to_complete, '=');
            if (eq - to_complete >= 2 && to_complete[1] == '-') {
                name = to_complete + 2;
                len = (size_t)(eq - name);
            } else { /* -abc=x: the last shorthand before the = */
                name = eq - 1;
                len = 1;
            }
            to_complete = eq + 1;
            with_eq = true;
        }
        if (len == 0 && n > 0 && is_flag_arg(a[n - 1]) && !strchr(a[n - 1], '=')) {
            const char *prev = a[n - 1];
            if (prev[0] == '-' && prev[1] == '-') {
                name = prev + 2;
                len = strlen(name);
            } else {
                name = prev + strlen(prev) - 1;
                len = 1;
            }
            trimmed = n - 1;
        }
        if (len > 0) {
            flag = len == 1 ? ctl_flag_shorthand(c, name[0]) : ctl_flag_lookup(c, name, len);
            if (!flag) {
                bad = name;
                bad_len = len;
                to_complete = orig;
            } else if (!with_eq && flag->type == CTL_BOOL) {
                flag = NULL; /* a bool flag takes no value: the word is an argument */
            } else {
                n = trimmed;
            }
        }
    }

    /* Parse the flags as the command would.  Parsed once more with a "--"
     * appended, a "--" typed earlier shows as one more argument: then the
     * word cannot be a flag. */
    bool flag_completion = true;
    char **args_left = a;
    int n_left = n;
    if (!c->raw_args) {
        char e[512];
        int n_dash;
        char **v;
        a[n] = "--";
        bool dash_ok = ctl_parse_all_flags(c, a, n + 1, &n_dash, &v, e, sizeof e) == 0;
        if (ctl_parse_all_flags(c, a, n, &n_left, &args_left, e, sizeof e) < 0) {
            (void)!mem_buf_printf(err, "Error while parsing flags from args ");
            go_list(err, a, n);
            (void)!mem_buf_printf(err, ": %s", e);
            return DIR_DEFAULT;
        }
        flag_completion = !(dash_ok && n_dash > n_left);
    }
    if (bad && flag_completion) {
        (void)!mem_buf_printf(err, "Subcommand '%.*s' does not support flag '%.*s'",
                              (int)cmd_name_len(c), c->use, (int)bad_len, bad);
        return DIR_DEFAULT;
    }
    struct ctl_flag *help = ctl_flag_lookup(c, "help", 4);
    if (help && help->changed)
        return DIR_NO_FILE;

    int directive;
    if (!flag && to_complete[0] == '-' && !strchr(to_complete, '=') && flag_completion) {
        add_flag_names(out, c, to_complete);
        directive = DIR_NO_FILE;
        if (!c->raw_args)
            return directive;
    } else {
        directive = DIR_DEFAULT;
        bool local_set = false;
        for (struct ctl_flag *f = c->flags; f && f->name; f++)
            local_set |= f->changed;
        /* subcommands only where no argument and no flag of the command
         * itself came before */
        if (!flag && n_left == 0 && !local_set && any_available(c)) {
            add_subcommands(out, c, to_complete);
            directive = DIR_NO_FILE;
        }
    }

    if (flag && flag_completion) /* etcdctl completes no flag's value */
        return directive;
    if (is_help_cmd(c))
        return help_args(out, args_left, n_left, to_complete);
    if (takes_no_files(c))
        return DIR_NO_FILE;
    return directive;
}
