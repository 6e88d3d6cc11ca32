using Harness.Abstractions;

[assembly: ContractVersion(Contract.Version)]
