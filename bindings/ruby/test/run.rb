# run.rb: ctest's entry to the Ruby binding tests: loads every test/test_*.rb and runs minitest,
# failing when no test ran (so a renamed or broken file cannot pass as green).
require 'minitest'

files = Dir[File.join(__dir__, 'test_*.rb')].sort
abort 'run.rb: no test files found' if files.empty?
files.each { |f| require f }

class RanCount < Minitest::AbstractReporter
  attr_reader :count

  def initialize
    super
    @count = 0
  end

  def record(result)
    @count += 1 if result.passed?
  end
end

counter = RanCount.new
Minitest.extensions << 'segbus_count'
Minitest.singleton_class.send(:define_method, :plugin_segbus_count_init) { |_| reporter << counter }
ok = Minitest.run(ARGV)
if ok && counter.count.zero?
  warn 'run.rb: no test passed (none defined?): failing'
  exit 1
end
exit(ok ? 0 : 1)
