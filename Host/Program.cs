using System.CommandLine;
using Harness.Host;
using Harness.Host.Cli;

// A worker (started per run or per matrix) builds only its own command: the time to its first step counts.
if (args is ["worker", ..]) return await new RootCommand { Harness.Host.Workers.WorkerCommand.Create() }.Parse(args).InvokeAsync();
// Redirected output (files, CI logs, pipes) has no terminal width: do not wrap tables into 80 columns.
if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 240;
return await HarnessCli.Build().Parse(args).InvokeAsync();
