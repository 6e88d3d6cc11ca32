using System.CommandLine;
using Harness.Host;
using Harness.Host.Cli;

// Redirected output (files, CI logs, pipes) has no terminal width: do not wrap tables into 80 columns.
if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 240;
return await HarnessCli.Build().Parse(args).InvokeAsync();
