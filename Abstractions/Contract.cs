namespace Harness.Abstractions;

/// <summary>The version of the plugin contract. Bumped on every breaking change of this assembly.</summary>
public static class Contract
{
    /// <summary>Current contract version. A plugin records the value it was compiled against with
    /// <c>[assembly: ContractVersion(Contract.Version)]</c>; the constant is baked into the plugin at
    /// compile time, so the host can refuse a plugin built against another version.</summary>
    public const int Version = 1;
}

/// <summary>Marks an assembly as a harness plugin built against contract <see cref="Version"/>.
/// Write <c>[assembly: ContractVersion(Contract.Version)]</c> once in every plugin assembly.</summary>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = false)]
public sealed class ContractVersionAttribute(int version) : Attribute
{
    public int Version { get; } = version;
}
