using System.CommandLine;
using Harness.Host;
using Harness.Host.Cli;

return await HarnessCli.Build().Parse(args).InvokeAsync();
